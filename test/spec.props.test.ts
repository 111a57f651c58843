/**
 * Spec documents, valid and hostile, as properties (issue 14 item 7): whatever a JSON spec file
 * holds, resolving and checking it gives a Right that summarises, or well-formed, bounded error
 * values, never an exception. Bounded for CI (a few hundred documents); the same arbitraries run
 * by the ten thousand in `tools/fuzz.ts --target spec-document`.
 */
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkSpec } from '../dsl/check.ts';
import { decodeSpec } from '../dsl/codec.ts';
import { arbExtendsDocument, arbIrDocument, arbSpecDocument, bases, judgeSpecDocument, stringify, type SpecDocument } from './helpers/spec-arbitraries.ts';

const dir = mkdtempSync(join(tmpdir(), 'starspec-spec-props-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
const judge = (d: SpecDocument) => judgeSpecDocument(d, join(dir, `case-${n++}.json`));

test('the unmutated bases decode and check', () => {
  for (const b of bases()) {
    const s = decodeSpec(JSON.parse(stringify(b)));
    assert.ok(E.isRight(s) && E.isRight(checkSpec(s.right)));
  }
});

test('property: any spec document is accepted or refused with bounded one-line errors, never an exception', async () => {
  let accepted = 0;
  let slowest = 0;
  await fc.assert(
    fc.asyncProperty(arbSpecDocument, async (d) => {
      const t0 = performance.now();
      const v = await judge(d);
      slowest = Math.max(slowest, performance.now() - t0);
      if (v.outcome === 'accepted') accepted++;
      assert.notEqual(v.outcome, 'internal', `${d.note}: ${'message' in v ? v.message : ''}`);
    }),
    { numRuns: 250, seed: 14 },
  );
  assert.ok(accepted > 10, `some documents are accepted (${accepted})`);
  // Each document is a few ms; a case that takes seconds means a walk that is not linear.
  assert.ok(slowest < 5_000, `slowest case ${slowest.toFixed(0)} ms`);
});

test('property: {extends, set} documents with values in range, at their bounds and past them', async () => {
  await fc.assert(
    fc.asyncProperty(arbExtendsDocument, async (d) => {
      const v = await judge(d);
      assert.notEqual(v.outcome, 'internal', `${d.note}: ${'message' in v ? v.message : ''}`);
    }),
    { numRuns: 120, seed: 3 },
  );
});

test('property: mutated resolved IRs', async () => {
  await fc.assert(
    fc.asyncProperty(arbIrDocument, async (d) => {
      const v = await judge(d);
      assert.notEqual(v.outcome, 'internal', `${d.note}: ${'message' in v ? v.message : ''}`);
    }),
    { numRuns: 120, seed: 5 },
  );
});
