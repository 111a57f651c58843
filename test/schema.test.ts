/**
 * The JSON Schema of JSON spec files (schema/spec.schema.json): committed as the build writes it,
 * valid draft-07, and agreeing with `starspec check` (the loader and checks) on a corpus of good
 * and bad documents, judged by ajv, a maintained JSON Schema validator. The schema judges
 * structure, types, ranges and unknown keys; a document that only the built spec can refute is
 * accepted by the schema and refused by check (the last case).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Ajv } from 'ajv';
import * as E from 'fp-ts/lib/Either.js';
import { specSchema } from '../api/schema.ts';
import { resolveChecked } from '../api/spec.ts';
import { encodeSpec } from '../dsl/codec.ts';
import { builtinSpecs } from '../specs/index.ts';
import { repoRoot, spec } from './helpers/specs.ts';

const tmp = mkdtempSync(join(tmpdir(), 'starspec-schema-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const committed = JSON.parse(readFileSync(join(repoRoot, 'schema/spec.schema.json'), 'utf8')) as object;
const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(committed);

test('the committed schema is the one the build generates from the codecs and the built-in specs', () => {
  assert.deepEqual(committed, JSON.parse(JSON.stringify(specSchema([...builtinSpecs.values()]))), 'run `npm run build` (or `starspec schema --out schema/spec.schema.json`) and commit the result');
  assert.ok(ajv.validateSchema(committed), JSON.stringify(ajv.errors));
});

const ir = (name: string, set: Record<string, unknown> = {}): Record<string, unknown> => JSON.parse(encodeSpec(spec(name, set))) as Record<string, unknown>;
const edit = (doc: Record<string, unknown>, f: (d: any) => void): Record<string, unknown> => {
  const d = JSON.parse(JSON.stringify(doc)) as Record<string, unknown>;
  f(d);
  return d;
};

const V1 = ir('stargan-v1');
/** The index of the first conv2d node of V1's first network. */
const CONV = (V1['networks'] as Array<{ nodes: Array<{ op: string }> }>)[0]!.nodes.findIndex((n) => n.op === 'conv2d');
const CORPUS: ReadonlyArray<readonly [string, unknown, boolean]> = [
  ['extends a built-in, with $schema', { $schema: '../schema/spec.schema.json', extends: 'stargan-v1', set: { gConvDim: 16, selectedAttrs: ['Male', 'Young'], lrDecay: 'code', beta1: 0.9 } }, true],
  ['extends with no set', { extends: 'stargan-v2' }, true],
  ['unknown setting', { extends: 'stargan-v1', set: { imagesize: 64 } }, false],
  ['a string for an integer', { extends: 'stargan-v1', set: { imageSize: '64' } }, false],
  ['a fraction for an integer', { extends: 'stargan-v1', set: { gConvDim: 8.5 } }, false],
  ['below the minimum', { extends: 'stargan-v2', set: { numDomains: 0 } }, false],
  ['above the maximum', { extends: 'stargan-v1', set: { beta1: 1.5 } }, false],
  ['an unknown enum value', { extends: 'stargan-v1', set: { dataset: 'celeba' } }, false],
  ['an unknown list entry', { extends: 'stargan-v1', set: { selectedAttrs: ['Male', 'Smiles'] } }, false],
  ['an empty list', { extends: 'stargan-v1', set: { selectedAttrs: [] } }, false],
  ['a number for a boolean-free list', { extends: 'stargan-v1', set: { selectedAttrs: 3 } }, false],
  ['an extra top-level key', { extends: 'stargan-v1', sets: {} }, false],
  ['set is not an object', { extends: 'stargan-v1', set: [1] }, false],
  ['extends is not a string', { extends: 3 }, false],
  ['a resolved IR', V1, true],
  ['a resolved IR with $schema', { $schema: 'x', ...ir('stargan-v2', { imageSize: 64, numDomains: 3 }) }, true],
  ['IR: a node with a field of the wrong type', edit(V1, (d) => void (d.networks[0].nodes[CONV].kernel = 'seven')), false],
  ['IR: a node missing a field', edit(V1, (d) => void delete d.networks[0].nodes[CONV].padding), false],
  ['IR: an unknown op', edit(V1, (d) => void (d.networks[0].nodes[CONV].op = 'conv3d')), false],
  ['IR: a wrong format', edit(V1, (d) => void (d.format = 'starspec/ir@99')), false],
  ['IR: an unknown schedule kind', edit(V1, (d) => void (d.training.optimizers[0].lr = { kind: 'cosine', value: 1 })), false],
  ['IR: a malformed loss expression', edit(V1, (d) => void (d.training.phases[0].loss[0].term.x = { e: 'data' })), false],
  ['IR: a setting of another type', edit(V1, (d) => void (d.settings.imageSize = { size: 3 })), false],
  ['IR: a tuple with an element missing', edit(ir('stargan-v1', { numItersDecay: 1000 }), (d) => void (d.training.optimizers[0].lr.points[0] = [0])), false],
];

test('ajv with the schema and starspec check agree on the corpus', async () => {
  const disagree: string[] = [];
  for (const [i, [what, doc, good]] of CORPUS.entries()) {
    const file = join(tmp, `doc${i}.json`);
    writeFileSync(file, JSON.stringify(doc));
    const bySchema = validate(doc) === true;
    const byCheck = E.isRight(await resolveChecked(file));
    if (bySchema !== good || byCheck !== good) disagree.push(`${what}: expected ${good ? 'valid' : 'invalid'}, schema says ${bySchema}, check says ${byCheck}${bySchema ? '' : ` (${ajv.errorsText(validate.errors).slice(0, 200)})`}`);
  }
  assert.deepEqual(disagree, []);
});

test('every example JSON spec validates against the schema it names', () => {
  for (const f of readdirSync(join(repoRoot, 'examples')).filter((x) => x.endsWith('.json'))) {
    const doc = JSON.parse(readFileSync(join(repoRoot, 'examples', f), 'utf8')) as { $schema?: string };
    assert.equal(doc.$schema, '../schema/spec.schema.json', f);
    assert.ok(validate(doc), `${f}: ${ajv.errorsText(validate.errors)}`);
  }
});

test('the boundary: settings that only the built spec refutes pass the schema and fail check', async () => {
  const doc = { extends: 'stargan-v1', set: { imageSize: 32 } }; // the default 6-layer D does not fit 32 px
  assert.equal(validate(doc), true);
  const file = join(tmp, 'shape.json');
  writeFileSync(file, JSON.stringify(doc));
  const r = await resolveChecked(file);
  assert.ok(E.isLeft(r) && /kernel 4 is larger than the padded input/.test(r.left[0]!.message));
});
