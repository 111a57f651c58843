/**
 * What the gradient tape keeps per op, in tensors of the op's output size: the facts behind the
 * memory model's `tapeFactor` (interpreters/analysis/memory.ts).
 *
 *   node --import tsx bench/tape.ts [wasm|cpu]
 *
 * Method: a chain x -> 1x1 conv -> K copies of the op -> 1x1 conv, differentiated w.r.t. its
 * weights (first order: the mean of the output, as a loss term, the instance norms in their
 * first-order form; second order: the squared gradient w.r.t. x, as a penalty); the live bytes of
 * distinct buffers when the backward pass reaches the first conv (all it keeps is alive then),
 * for K = 3 minus K = 1, per output element of one op. Down/up pairs (a stride-2 conv and a
 * transposed conv, an average pool and an upsample) are measured together, per element of the pair.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { fileURLToPath } from 'node:url';
import * as B from '../dsl/builder.ts';
import { initParams } from '../dsl/init.ts';
import { selectBackend, shutdownBackend, type BackendName } from '../interpreters/tfjs/backend.ts';
import { compileNetwork } from '../interpreters/tfjs/forward.ts';
import { loadParams } from '../interpreters/tfjs/params.ts';

type Sym = ReturnType<typeof B.input>;

export interface TapeUnit {
  readonly make: (h: Sym, s: Sym, id: () => string, c: number) => Sym;
  /** Output elements of one unit, in units of the chain's activation. */
  readonly size: number;
}

export const UNITS: Readonly<Record<string, TapeUnit>> = {
  conv2d: { make: (h, _s, id, c) => B.conv2d({ path: id(), in: c, out: c, k: 3, p: 1 })(h), size: 1 },
  'conv2d no bias': { make: (h, _s, id, c) => B.conv2d({ path: id(), in: c, out: c, k: 3, p: 1, bias: false })(h), size: 1 },
  instanceNorm: { make: (h, _s, id, c) => B.instanceNorm({ path: id(), channels: c })(h), size: 1 },
  'instanceNorm affine': { make: (h, _s, id, c) => B.instanceNorm({ path: id(), channels: c, affine: true })(h), size: 1 },
  adain: { make: (h, s, id, c) => B.adain({ path: id(), channels: c, styleDim: 16, style: s })(h), size: 1 },
  relu: { make: (h, _s, id) => B.relu(id())(h), size: 1 },
  leakyRelu: { make: (h, _s, id) => B.leakyRelu(id(), 0.2)(h), size: 1 },
  tanh: { make: (h, _s, id) => B.tanh(id())(h), size: 1 },
  'add (scaled)': { make: (h, _s, id) => B.add(id(), [h, h], 0.7), size: 1 },
  'conv s2 + convTranspose s2': {
    make: (h, _s, id, c) => B.convTranspose2d({ path: id(), in: c, out: c, k: 4, s: 2, p: 1 })(B.conv2d({ path: id(), in: c, out: c, k: 4, s: 2, p: 1 })(h)),
    size: 1.25,
  },
  'avgPool + upsampleNearest': { make: (h, _s, id) => B.upsampleNearest(id(), 2)(B.avgPool(id(), 2)(h)), size: 1.25 },
};

/**
 * The engine's live bytes of distinct tensor buffers (tfjs' numBytes counts shared handles twice)
 * and their peak since `resetPeak`, counted from its creation; `stop` puts the engine back.
 */
export interface LiveBytes {
  readonly live: () => number;
  readonly peak: () => number;
  readonly resetPeak: () => void;
  readonly stop: () => void;
}

export const trackLiveBytes = (): LiveBytes => {
  const engine = tf.engine() as unknown as {
    state: { tensorInfo: { has: (d: object) => boolean; get: (d: object) => { bytes: number; backend: unknown } } };
    trackTensor: (a: { dataId: object }, b: unknown) => void;
    removeDataId: (d: object, b: unknown) => void;
  };
  let live = 0;
  let peak = 0;
  const track = engine.trackTensor;
  const remove = engine.removeDataId;
  engine.trackTensor = function (this: typeof engine, a, b) {
    const fresh = !this.state.tensorInfo.has(a.dataId);
    track.call(this, a, b);
    if (fresh) peak = Math.max(peak, (live += this.state.tensorInfo.get(a.dataId).bytes));
  };
  engine.removeDataId = function (this: typeof engine, d, b) {
    const info = this.state.tensorInfo.get(d);
    if (info && info.backend === b) live -= info.bytes;
    remove.call(this, d, b);
  };
  return {
    live: () => live,
    peak: () => peak,
    resetPeak: () => void (peak = live),
    stop: () => {
      engine.trackTensor = track;
      engine.removeDataId = remove;
    },
  };
};

let tracker: LiveBytes | null = null;

/** Tensors of the unit's output size the tape keeps per element, first and second order. */
export const measureUnit = (name: string, order: 1 | 2, n = 2, c = 16, h = 16): number => {
  tracker ??= trackLiveBytes();
  const live = tracker.live;
  const at = (k: number): number => {
    let uid = 0;
    const id = (): string => `u${uid++}`;
    const x = B.input('x', [c, h, h]);
    const s = B.input('s', [16]);
    let v = B.conv2d({ path: 'c1', in: c, out: c, k: 1 })(x);
    for (let i = 0; i < k; i++) v = UNITS[name]!.make(v, s, id, c);
    const net = B.network('t', { out: B.conv2d({ path: 'c2', in: c, out: c, k: 1 })(v) }, { inputOrder: ['x', 's'] });
    const comp = compileNetwork(net);
    const p = loadParams(net, initParams(net, 1), { variables: true, origin: 't' });
    if (E.isLeft(comp) || E.isLeft(p)) throw new Error('tape: bad chain');
    const params = p.right as Map<string, tf.Variable>;
    const xin = tf.randomNormal([n, h, h, c]);
    const ins = { x: xin, s: tf.randomNormal([n, 16]) };
    const before = live();
    let kept = 0;
    // The first conv's weight is read through this op: its gradient runs last in the backward pass.
    const probe = tf.customGrad((...a: Array<tf.Tensor | tf.GradSaveFunc>) => ({
      value: tf.clone(a[0] as tf.Tensor),
      gradFunc: (dy: tf.Tensor) => {
        kept = live() - before;
        return tf.clone(dy);
      },
    })) as (w: tf.Tensor) => tf.Tensor;
    const r = tf.variableGrads(() => {
      const pp = new Map<string, tf.Tensor>(params);
      pp.set('c1.weight', probe(params.get('c1.weight')!));
      if (order === 1) return tf.mean(comp.right.apply(pp, ins, { layout: 'nhwc', firstOrder: true })['out']!) as tf.Scalar;
      const g = tf.grad((xv: tf.Tensor) => tf.sum(comp.right.apply(pp, { ...ins, x: xv }, { layout: 'nhwc' })['out']!))(xin);
      return tf.sum(tf.square(g)) as tf.Scalar;
    }, [...params.values()]);
    tf.dispose([r.value, ...Object.values(r.grads), ...Object.values(ins), ...params.values()]);
    return kept;
  };
  return (at(3) - at(1)) / (2 * UNITS[name]!.size * n * c * h * h * 4);
};

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const backend = (process.argv[2] ?? 'wasm') as BackendName;
  const b = await selectBackend(backend);
  if (E.isLeft(b)) throw new Error(b.left.map((e) => e.message).join('; '));
  const w = Math.max(...Object.keys(UNITS).map((k) => k.length));
  process.stdout.write(`tensors of the output's size the tape keeps per element (${backend}):\n${'op'.padEnd(w)}  first  second\n`);
  for (const name of Object.keys(UNITS))
    process.stdout.write(`${name.padEnd(w)}  ${measureUnit(name, 1).toFixed(2).padStart(5)}  ${measureUnit(name, 2).toFixed(2).padStart(6)}\n`);
  shutdownBackend();
}
