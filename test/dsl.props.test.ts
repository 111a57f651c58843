/** Property-based tests of the DSL: shapes, errors as values, JSON round trip, additivity. */
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adainResBlk, resBlk, v1ResidualBlock } from '../dsl/blocks.ts';
import {
  avgPool, branches, concatLabel, conv2d, convTranspose2d, flatten, indexInput, input, instanceNorm,
  leakyRelu, linear, network, relu, tanh, upsampleNearest, type Sym,
} from '../dsl/builder.ts';
import { checkSpec } from '../dsl/check.ts';
import { decodeSpec } from '../dsl/codec.ts';
import { IR_FORMAT, type Network, type Spec } from '../dsl/ir.ts';
import { parameterCount } from '../dsl/params.ts';
import { inferShapes } from '../dsl/shapes.ts';
import { spec as builtSpec } from './helpers/specs.ts';

// ---------------------------------------------------------------------------------------------
// Random valid networks: a plan of steps, built while tracking the shape so every step is legal.

type Step =
  | { k: 'conv'; size: 1 | 3; out: number }
  | { k: 'down'; out: number }
  | { k: 'upT'; out: number }
  | { k: 'norm'; affine: boolean }
  | { k: 'act'; which: 0 | 1 | 2 }
  | { k: 'pool' }
  | { k: 'up' }
  | { k: 'res'; out: number; down: boolean; normalize: boolean }
  | { k: 'adain'; out: number; up: boolean; wHpf: 0 | 1 }
  | { k: 'v1res' }
  | { k: 'label' };
type Head = { k: 'none' } | { k: 'linear'; out: number } | { k: 'branches'; count: number; out: number };
interface Plan {
  readonly channels: number;
  readonly log2size: number;
  readonly styleDim: number;
  readonly labelWidth: number;
  readonly steps: readonly Step[];
  readonly head: Head;
}

const width = fc.integer({ min: 1, max: 6 });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ k: fc.constant('conv' as const), size: fc.constantFrom(1 as const, 3 as const), out: width }),
  fc.record({ k: fc.constant('down' as const), out: width }),
  fc.record({ k: fc.constant('upT' as const), out: width }),
  fc.record({ k: fc.constant('norm' as const), affine: fc.boolean() }),
  fc.record({ k: fc.constant('act' as const), which: fc.constantFrom(0 as const, 1 as const, 2 as const) }),
  fc.record({ k: fc.constant('pool' as const) }),
  fc.record({ k: fc.constant('up' as const) }),
  fc.record({ k: fc.constant('res' as const), out: width, down: fc.boolean(), normalize: fc.boolean() }),
  fc.record({ k: fc.constant('adain' as const), out: width, up: fc.boolean(), wHpf: fc.constantFrom(0 as const, 1 as const) }),
  fc.record({ k: fc.constant('v1res' as const) }),
  fc.record({ k: fc.constant('label' as const) }),
);
const planArb: fc.Arbitrary<Plan> = fc.record({
  channels: width,
  log2size: fc.integer({ min: 1, max: 5 }),
  styleDim: fc.integer({ min: 1, max: 4 }),
  labelWidth: fc.integer({ min: 1, max: 4 }),
  steps: fc.array(stepArb, { maxLength: 12 }),
  head: fc.oneof(
    fc.constant<Head>({ k: 'none' }),
    fc.record({ k: fc.constant('linear' as const), out: width }),
    fc.record({ k: fc.constant('branches' as const), count: fc.integer({ min: 1, max: 3 }), out: width }),
  ),
});

interface Built {
  readonly out: Sym;
  readonly unused: readonly Sym[];
  readonly c: number;
  readonly h: number;
}
interface Ctx {
  readonly s: Sym;
  readonly label: Sym;
  readonly styleDim: number;
  readonly labelWidth: number;
}

/** One step applied to `v` of shape (c, h, h), or null when it would not be legal there. */
const applyStep = (st: Step, path: string, v: Sym, c: number, h: number, ctx: Ctx): Built | null => {
  const same = (out: Sym, nc = c, nh = h): Built => ({ out, unused: [], c: nc, h: nh });
  switch (st.k) {
    case 'conv': return same(conv2d({ path, in: c, out: st.out, k: st.size, p: (st.size - 1) / 2 })(v), st.out);
    case 'down': return h >= 2 ? same(conv2d({ path, in: c, out: st.out, k: 4, s: 2, p: 1 })(v), st.out, h / 2) : null;
    case 'upT': return h <= 16 ? same(convTranspose2d({ path, in: c, out: st.out, k: 4, s: 2, p: 1, bias: false })(v), st.out, h * 2) : null;
    case 'norm': return h >= 2 ? same(instanceNorm({ path, channels: c, affine: st.affine })(v)) : null;
    case 'act': return same([relu(path), leakyRelu(path, 0.2), tanh(path)][st.which]!(v));
    case 'pool': return h >= 2 ? same(avgPool(path)(v), c, h / 2) : null;
    case 'up': return h <= 16 ? same(upsampleNearest(path)(v), c, h * 2) : null;
    case 'res':
      // PyTorch refuses instance norm over a 1x1 map, so a normalized downsampling block needs 4x4.
      return h >= (st.down && st.normalize ? 4 : 2)
        ? same(resBlk({ path, dimIn: c, dimOut: st.out, normalize: st.normalize, downsample: st.down }, v), st.out, st.down ? h / 2 : h)
        : null;
    case 'adain': {
      if (h < 2 || h > 16) return null;
      const r = adainResBlk({ path, dimIn: c, dimOut: st.out, styleDim: ctx.styleDim, wHpf: st.wHpf, upsample: st.up }, v, ctx.s);
      return { out: r.out, unused: r.unused, c: st.out, h: st.up ? h * 2 : h };
    }
    case 'v1res': return h >= 2 ? same(v1ResidualBlock(path, c, v)) : null;
    case 'label': return same(concatLabel(path, v, ctx.label), c + ctx.labelWidth);
  }
};

/** Build a plan's network, and each block (and the head) as a network of its own. */
const buildPlan = (p: Plan): { net: Network; parts: Network[] } => {
  const ctx: Ctx = { s: input('s', [p.styleDim]), label: input('c', [p.labelWidth]), styleDim: p.styleDim, labelWidth: p.labelWidth };
  const y = indexInput('y');
  let c = p.channels;
  let h = 2 ** p.log2size;
  let cur: Sym = input('x', [c, h, h]);
  const unused: Sym[] = [];
  const parts: Network[] = [];
  p.steps.forEach((st, i) => {
    const b = applyStep(st, `b${i}`, cur, c, h, ctx);
    if (b === null) return;
    const alone = applyStep(st, `b${i}`, input('x', [c, h, h]), c, h, ctx)!;
    parts.push(network('part', { out: alone.out }, { unused: alone.unused }));
    unused.push(...b.unused);
    cur = b.out;
    c = b.c;
    h = b.h;
  });
  const head = (v: Sym): Sym => {
    const f = flatten('flat')(v);
    const hd = p.head;
    switch (hd.k) {
      case 'none': return v;
      case 'linear': return linear({ path: 'head', in: c * h * h, out: hd.out })(f);
      case 'branches': return branches('heads', f, hd.count, (d) => linear({ path: `heads.${d}`, in: c * h * h, out: hd.out }), y);
    }
  };
  parts.push(network('head', { out: head(input('x', [c, h, h])) }));
  const net = network('random', { out: head(cur) }, { inputOrder: ['x', 'c', 's', 'y'], unused });
  return { net, parts };
};

const asSpec = (nets: readonly Network[]): Spec => ({
  ...builtSpec('stargan-v1', {}),
  format: IR_FORMAT,
  networks: nets,
});

test('random valid networks infer shapes without error', () => {
  fc.assert(
    fc.property(planArb, (p) => {
      const { net } = buildPlan(p);
      const r = inferShapes(net);
      assert.ok(E.isRight(r), JSON.stringify(E.isLeft(r) ? r.left : null));
      assert.equal(r.right.shapes.length, net.nodes.length);
    }),
    { numRuns: 500 },
  );
});

test('parameter count is additive over blocks', () => {
  fc.assert(
    fc.property(planArb, (p) => {
      const { net, parts } = buildPlan(p);
      assert.equal(parameterCount(net), parts.reduce((a, n) => a + parameterCount(n), 0));
    }),
    { numRuns: 300 },
  );
});

/** Mutations that are guaranteed to make a valid network invalid. */
const breakNetwork = (net: Network, choice: number, pick: number): Network | null => {
  const nodes = net.nodes.map((n) => ({ ...n }) as Record<string, unknown>);
  const idx = (pred: (n: Record<string, unknown>) => boolean): number[] => nodes.flatMap((n, i) => (pred(n) ? [i] : []));
  const at = <T>(xs: readonly T[]): T | undefined => (xs.length === 0 ? undefined : xs[pick % xs.length]);
  switch (choice) {
    case 0: { // channel mismatch
      const i = at(idx((n) => n['op'] === 'conv2d' || n['op'] === 'linear'));
      if (i === undefined) return null;
      const n = nodes[i]!;
      if (n['op'] === 'conv2d') n['inChannels'] = (n['inChannels'] as number) + 1;
      else n['inFeatures'] = (n['inFeatures'] as number) + 1;
      break;
    }
    case 1: { // a reference to a later node (or itself)
      const i = at(idx((n) => typeof n['input'] === 'number'));
      if (i === undefined) return null;
      nodes[i]!['input'] = i + (pick % 2);
      break;
    }
    case 2: { // a zero or fractional kernel
      const i = at(idx((n) => n['op'] === 'conv2d'));
      if (i === undefined) return null;
      nodes[i]!['kernel'] = pick % 2 === 0 ? 0 : 2.5;
      break;
    }
    case 3: // an output that points nowhere
      return { ...net, outputs: [{ name: 'out', ref: net.nodes.length + pick }] };
    case 4: { // an input shape with a zero
      nodes[0]!['shape'] = [0, 4, 4];
      break;
    }
    default: { // pooling far past the image size
      const i = at(idx((n) => n['op'] === 'avgPool'));
      if (i === undefined) return null;
      nodes[i]!['size'] = 1024;
    }
  }
  return { ...net, nodes: nodes as unknown as Network['nodes'] };
};

test('random invalid networks yield error values naming a node, never exceptions', () => {
  let broken = 0;
  fc.assert(
    fc.property(planArb, fc.integer({ min: 0, max: 5 }), fc.nat(), (p, choice, pick) => {
      const bad = breakNetwork(buildPlan(p).net, choice, pick);
      if (bad === null) return;
      broken++;
      const r = inferShapes(bad);
      assert.ok(E.isLeft(r), `mutation ${choice} was accepted`);
      for (const e of r.left) assert.ok(e.path.startsWith('random'), e.path);
    }),
    { numRuns: 600 },
  );
  assert.ok(broken > 300, `only ${broken} mutations applied`);
});

test('the IR round-trips through JSON (random networks and built-in specs)', () => {
  fc.assert(
    fc.property(planArb, (p) => {
      const s = asSpec([buildPlan(p).net]);
      const back = decodeSpec(JSON.parse(JSON.stringify(s)));
      assert.ok(E.isRight(back));
      assert.deepEqual(back.right, s);
    }),
    { numRuns: 200 },
  );
  fc.assert(
    fc.property(
      fc.constantFrom('CelebA', 'RaFD', 'Both'),
      fc.integer({ min: 0, max: 3 }),
      fc.constantFrom(32, 64, 128, 256),
      fc.integer({ min: 1, max: 4 }),
      fc.constantFrom(0, 1),
      (ds, rep, size, k, hpf) => {
        for (const s of [builtSpec('stargan-v1', { dataset: ds, gRepeatNum: rep }), builtSpec('stargan-v2', { imageSize: size, numDomains: k, wHpf: hpf })]) {
          const back = decodeSpec(JSON.parse(JSON.stringify(s)));
          assert.ok(E.isRight(back));
          assert.deepEqual(back.right, s);
        }
      },
    ),
    { numRuns: 30 },
  );
});

test('10,000 random JSON documents give typed errors and never crash the decoder', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (u) => {
      const r = decodeSpec(u);
      if (E.isLeft(r)) for (const e of r.left) assert.equal(typeof e.message, 'string');
    }),
    { numRuns: 10_000 },
  );
});

test('random corruptions of a valid IR are decoded or rejected, and checked, without exceptions', () => {
  const base = JSON.parse(JSON.stringify(builtSpec('stargan-v2', { imageSize: 32 }))) as unknown;
  // Every path to a leaf or subtree of the spec.
  const paths: Array<Array<string | number>> = [];
  const walk = (v: unknown, p: Array<string | number>): void => {
    paths.push(p);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...p, i]));
    else if (typeof v === 'object' && v !== null) Object.entries(v).forEach(([k, x]) => walk(x, [...p, k]));
  };
  walk(base, []);
  fc.assert(
    fc.property(fc.nat({ max: paths.length - 1 }), fc.jsonValue({ maxDepth: 2 }), (i, replacement) => {
      const doc = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
      const p = paths[i]!;
      if (p.length === 0) return;
      let o = doc as Record<string | number, unknown>;
      for (const k of p.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
      o[p[p.length - 1]!] = replacement;
      const r = decodeSpec(doc);
      if (E.isRight(r)) checkSpec(r.right); // must not throw either way
    }),
    { numRuns: 3000 },
  );
});
