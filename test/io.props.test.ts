/**
 * Property tests for the file readers (issue 14 item 7), bounded in count and time for CI; the
 * large runs are `node --import tsx tools/fuzz.ts`. The regression cases live in io.hostile.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { readSafetensorsContents } from '../io/safetensors.ts';
import { readTorchCheckpoint } from '../io/torch.ts';
import { arbCheckpoint, arbMutation, arbSafetensors, expectedOf, judgeCheckpoint, judgeSafetensors, mutate } from './helpers/arbitraries.ts';
import { fixturesDir } from './helpers/specs.ts';

const FIXTURES = fixturesDir;
/** Each property stops after this long, whatever its count (CI machines are shared). */
const TIME = { interruptAfterTimeLimit: 4000, markInterruptAsFailure: false } as const;

test('generated checkpoints (zip and legacy, every dtype, strided, nested) read exactly', () => {
  fc.assert(
    fc.property(arbCheckpoint, (c) => {
      const v = judgeCheckpoint(() => readTorchCheckpoint(c.bytes, 'gen.ckpt'), c.expected);
      assert.equal(v.outcome, 'same', JSON.stringify(v));
    }),
    { numRuns: 200, ...TIME },
  );
});

test('mutated generated checkpoints: refused or read, never an internal error; zip never reads changed data', () => {
  const outcomes = new Map<string, number>();
  fc.assert(
    fc.property(arbCheckpoint, arbMutation, (c, ms) => {
      const bytes = mutate(c.bytes, ms);
      const v = judgeCheckpoint(() => readTorchCheckpoint(bytes, 'mut.ckpt'), c.expected);
      outcomes.set(v.outcome, (outcomes.get(v.outcome) ?? 0) + 1);
      assert.notEqual(v.outcome, 'internal', JSON.stringify(v));
      if (c.format === 'zip') assert.notEqual(v.outcome, 'changed', `zip mutation ${JSON.stringify(ms)} read as different tensors`);
    }),
    { numRuns: 400, ...TIME },
  );
  assert.ok((outcomes.get('refused') ?? 0) > 0, JSON.stringify([...outcomes]));
});

test('mutated official checkpoints (structure bytes): never internal; zip changes never accepted', () => {
  const sources = ['v1_discriminator/model.ckpt', 'v1_discriminator/model_legacy.ckpt', 'v1_generator/model.ckpt'].map((f) => {
    const bytes = new Uint8Array(readFileSync(`${FIXTURES}/${f}`));
    const original = readTorchCheckpoint(bytes, f);
    assert.ok(E.isRight(original));
    // The pickle at the start and the zip directory at the end hold the structure.
    const hot: Array<[number, number]> = [[0, 2500], [bytes.length - 1600, bytes.length]];
    return { f, bytes, hot, expected: expectedOf(original.right), zip: f.endsWith('model.ckpt') };
  });
  fc.assert(
    fc.property(fc.nat({ max: sources.length - 1 }), arbMutation, fc.boolean(), (k, ms, anywhere) => {
      const s = sources[k]!;
      const bytes = mutate(s.bytes, ms, anywhere ? undefined : s.hot);
      const v = judgeCheckpoint(() => readTorchCheckpoint(bytes, s.f), s.expected);
      assert.notEqual(v.outcome, 'internal', JSON.stringify(v));
      if (s.zip) assert.notEqual(v.outcome, 'changed', `${s.f}: ${JSON.stringify(ms)} read as different tensors`);
    }),
    { numRuns: 150, ...TIME },
  );
});

test('safetensors headers, valid and hostile: exact reads or refusals, never internal', () => {
  fc.assert(
    fc.property(arbSafetensors, (f) => {
      const v = judgeSafetensors(() => readSafetensorsContents(f.bytes, 'gen.safetensors'), f);
      assert.notEqual(v.outcome, 'internal', JSON.stringify(v));
      if (f.expected !== undefined) assert.equal(v.outcome, 'same');
    }),
    { numRuns: 500, ...TIME },
  );
});

test('mutated safetensors files: refused or well-formed, never internal', () => {
  fc.assert(
    fc.property(arbSafetensors, arbMutation, (f, ms) => {
      const bytes = mutate(f.bytes, ms);
      const v = judgeSafetensors(() => readSafetensorsContents(bytes, 'mut.safetensors'), { bytes });
      assert.notEqual(v.outcome, 'internal', JSON.stringify(v));
    }),
    { numRuns: 400, ...TIME },
  );
});
