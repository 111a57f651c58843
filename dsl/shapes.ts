/**
 * Shape inference: a total function from a network to a per-sample shape for every node, or error
 * values naming the node path, the shapes involved and the rule broken. It never throws, whatever
 * the input (a decoded JSON spec can hold anything the codec allows).
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, specError, type Result, type SpecError } from './errors.ts';
import type { Network } from './ir.ts';

/** Per-sample shape: the batch dimension N is implicit and symbolic. */
export type Shape = readonly number[];

export const showShape = (s: Shape): string => `(N${s.map((d) => `, ${d}`).join('')})`;

export interface Inferred {
  readonly shapes: readonly Shape[];
  /** dtype of each node's value: only inputs may be indices. */
  readonly index: readonly boolean[];
}

export const isPosInt = (v: number): boolean => Number.isInteger(v) && v > 0;
const isNonNegInt = (v: number): boolean => Number.isInteger(v) && v >= 0;

const convOut = (size: number, k: number, s: number, p: number): number =>
  Math.floor((size + 2 * p - k) / s) + 1;

/** The spatial output size of a transposed conv (output_padding 0, dilation 1). */
const convTOut = (size: number, k: number, s: number, p: number): number => (size - 1) * s - 2 * p + k;

export const inferShapes = (net: Network): Result<Inferred> => {
  const errors: SpecError[] = [];
  const shapes: (Shape | null)[] = [];
  const index: boolean[] = [];
  const names = new Set<string>();

  net.nodes.forEach((node, i) => {
    const err = (message: string, hint = ''): null => {
      errors.push(specError(`${net.name}/${node.path || `#${i}`}`, message, hint));
      return null;
    };
    /** The shape of a referenced node, or null (reporting bad references; a failed input is silent). */
    const get = (ref: number, role: string): Shape | null => {
      if (!Number.isInteger(ref) || ref < 0 || ref >= i)
        return err(
          `${role} refers to node ${ref}, which is not an earlier node`,
          'nodes must be listed in topological order and refer to earlier nodes',
        );
      if (index[ref] && node.op !== 'select')
        return err(`${role} is the domain index '${net.nodes[ref]!.path}', not a float tensor`);
      return shapes[ref] ?? null;
    };
    const image = (s: Shape | null, role = 'input'): s is Shape =>
      s !== null &&
      (s.length === 3 ||
        err(`${role} must be an image (N, C, H, W); got ${showShape(s)}`) !== null);
    const channels = (s: Shape, c: number, field: string): boolean =>
      s[0] === c ||
      err(`expects ${c} input channels (${field}) but its input has ${s[0]}: ${showShape(s)}`) !==
        null;

    const shape = ((): Shape | null => {
      switch (node.op) {
        case 'input': {
          if (names.has(node.name)) return err(`duplicate input name '${node.name}'`);
          names.add(node.name);
          if (!node.shape.every(isPosInt))
            return err(`input shape ${showShape(node.shape)} must hold positive integers`);
          if (node.dtype === 'index' && node.shape.length !== 0)
            return err('a domain index input is one integer per sample: its shape must be []');
          if (node.optional && node.dtype === 'index')
            return err('an optional input is a float tensor (zeros when left out); a domain index cannot be left out');
          return node.shape;
        }
        case 'conv2d':
        case 'convTranspose2d': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          if (!isPosInt(node.inChannels) || !isPosInt(node.outChannels))
            return err(`channels must be positive integers (in ${node.inChannels}, out ${node.outChannels})`);
          const w2 = window2(node, err);
          if (w2 === null) return null;
          const { k, st, p } = w2;
          if (!channels(s, node.inChannels, 'inChannels')) return null;
          const [, h, w] = s as [number, number, number];
          if (node.op === 'conv2d') {
            if (h + 2 * p[0] < k[0] || w + 2 * p[1] < k[1])
              return err(
                `kernel ${show2(node.kernel)} is larger than the padded input ${h + 2 * p[0]}x${w + 2 * p[1]} (input ${showShape(s)}, padding ${show2(node.padding)})`,
                'use a smaller kernel, more padding, or a larger image / fewer downsampling blocks',
              );
            return [node.outChannels, convOut(h, k[0], st[0], p[0]), convOut(w, k[1], st[1], p[1])];
          }
          if (p[0] >= k[0] || p[1] >= k[1]) return err(`padding ${show2(node.padding)} must be smaller than the kernel ${show2(node.kernel)}`);
          const oh = convTOut(h, k[0], st[0], p[0]);
          const ow = convTOut(w, k[1], st[1], p[1]);
          if (oh < 1 || ow < 1) return err(`output would be ${oh}x${ow}`);
          return [node.outChannels, oh, ow];
        }
        case 'batchNorm2d': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          if (!(node.eps > 0)) return err(`eps must be positive; got ${node.eps}`);
          if (!channels(s, node.channels, 'channels')) return null;
          return s;
        }
        case 'avgPool2d':
        case 'maxPool2d': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          const w2 = window2(node, err);
          if (w2 === null) return null;
          const { k, st, p } = w2;
          if (2 * p[0] > k[0] || 2 * p[1] > k[1])
            return err(`padding ${show2(node.padding)} must be at most half the kernel ${show2(node.kernel)} (as PyTorch requires)`);
          const [c, h, w] = s as [number, number, number];
          if (h + 2 * p[0] < k[0] || w + 2 * p[1] < k[1])
            return err(`cannot pool a ${h}x${w} map (padding ${show2(node.padding)}) with a ${show2(node.kernel)} window`, 'use a larger image or a smaller window');
          return [c, convOut(h, k[0], st[0], p[0]), convOut(w, k[1], st[1], p[1])];
        }
        case 'globalAvgPool': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          return [s[0]!, 1, 1];
        }
        case 'resizeBilinear': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          const [c, h, w] = s as [number, number, number];
          if ((node.size === null) === (node.scale === null))
            return err('give exactly one of size and scale', 'size: [H, W] (or one number for both); scale: a factor');
          if (node.size !== null) {
            const sz = pairOf(node.size);
            if (sz === null || !sz.every(isPosInt)) return err(`size must be a positive integer or a pair of them; got ${JSON.stringify(node.size)}`);
            return [c, sz[0], sz[1]];
          }
          const f = node.scale!;
          if (!(f > 0) || !Number.isFinite(f)) return err(`scale must be a positive number; got ${f}`);
          // PyTorch: out = floor(in * scale); with align_corners False it maps coordinates by
          // 1 / scale, which is the size mapping (in / out) only when in * scale is whole.
          if (!node.alignCorners && (!Number.isInteger(h * f) || !Number.isInteger(w * f)))
            return err(
              `scale ${f} of a ${h}x${w} map gives ${h * f}x${w * f}, not whole sizes`,
              'give the output size instead (PyTorch maps coordinates differently for a fractional scale_factor without align_corners)',
            );
          const oh = Math.floor(h * f);
          const ow = Math.floor(w * f);
          if (oh < 1 || ow < 1) return err(`scale ${f} of a ${h}x${w} map leaves nothing (${oh}x${ow})`);
          return [c, oh, ow];
        }
        case 'instanceNorm': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          if (!(node.eps > 0)) return err(`eps must be positive; got ${node.eps}`);
          if (!channels(s, node.channels, 'channels')) return null;
          const [, h, w] = s as [number, number, number];
          if (h * w < 2)
            return err(`instance norm over a ${h}x${w} map has no variance to normalise`, 'normalise a larger map');
          return s;
        }
        case 'adain': {
          const s = get(node.input, 'input');
          const st = get(node.style, 'style');
          if (!image(s) || st === null) return null;
          if (!(node.eps > 0)) return err(`eps must be positive; got ${node.eps}`);
          if (!channels(s, node.channels, 'channels')) return null;
          if (st.length !== 1 || st[0] !== node.styleDim)
            return err(`style must be (N, ${node.styleDim}); got ${showShape(st)}`);
          return s;
        }
        case 'linear': {
          const s = get(node.input, 'input');
          if (s === null) return null;
          if (!isPosInt(node.inFeatures) || !isPosInt(node.outFeatures))
            return err(`features must be positive integers (in ${node.inFeatures}, out ${node.outFeatures})`);
          if (s.length !== 1)
            return err(`a linear layer takes (N, features); got ${showShape(s)}`, 'flatten first');
          if (s[0] !== node.inFeatures)
            return err(`expects ${node.inFeatures} input features but gets ${s[0]}`);
          return [node.outFeatures];
        }
        case 'relu':
        case 'tanh':
          return get(node.input, 'input');
        case 'leakyRelu': {
          const s = get(node.input, 'input');
          if (s !== null && !Number.isFinite(node.alpha)) return err(`alpha must be finite; got ${node.alpha}`);
          return s;
        }
        case 'avgPool': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          if (!isPosInt(node.size)) return err(`pool size must be a positive integer; got ${node.size}`);
          const [c, h, w] = s as [number, number, number];
          if (h < node.size || w < node.size)
            return err(`cannot pool a ${h}x${w} map by ${node.size}`, 'use a larger image or fewer downsampling blocks');
          return [c, Math.floor(h / node.size), Math.floor(w / node.size)];
        }
        case 'upsampleNearest': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          if (!isPosInt(node.scale)) return err(`scale must be a positive integer; got ${node.scale}`);
          const [c, h, w] = s as [number, number, number];
          return [c, h * node.scale, w * node.scale];
        }
        case 'concat': {
          if (node.inputs.length === 0) return err('concat needs at least one input');
          const ss = node.inputs.map((r, j) => get(r, `inputs[${j}]`));
          if (ss.some((x) => x === null)) return null;
          const first = ss[0]!;
          if (first.length === 0) return err('cannot concatenate scalars per sample');
          const fits = (x: Shape): boolean => x.length === first.length && x.every((d, j) => j === 0 || d === first[j]);
          if (!ss.every((x) => fits(x!)))
            return err(
              `cannot concatenate shapes ${ss.map((x) => showShape(x!)).join(', ')} on dim 1`,
              'every input must have the same rank and the same sizes after the channel dimension',
            );
          return [ss.reduce((a, x) => a + x![0]!, 0), ...first.slice(1)];
        }
        case 'sliceChannels': {
          const s = get(node.input, 'input');
          if (s === null) return null;
          if (s.length === 0) return err('cannot slice a scalar per sample');
          if (!isNonNegInt(node.start) || !isNonNegInt(node.end) || !(node.start < node.end) || node.end > s[0]!)
            return err(`channels ${node.start}:${node.end} are not a non-empty range of the input's ${s[0]}`);
          return [node.end - node.start, ...s.slice(1)];
        }
        case 'sumChannels': {
          const s = get(node.input, 'input');
          if (s === null) return null;
          if (s.length === 0) return err('cannot sum a scalar per sample over channels');
          return [1, ...s.slice(1)];
        }
        case 'zeroChannels': {
          const s = get(node.input, 'input');
          if (s === null) return null;
          if (s.length === 0) return err('a scalar per sample has no channels');
          const bad = node.channels.find((c) => !isNonNegInt(c) || c >= s[0]!);
          if (bad !== undefined) return err(`channel ${bad} is not one of the input's ${s[0]}`);
          return s;
        }
        case 'addCoords': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          const [c, h, w] = s as [number, number, number];
          if (h < 2 || w < 2) return err(`coordinates of a ${h}x${w} map divide by zero (2h / (H - 1) - 1)`, 'add coordinates to maps of at least 2x2');
          return [c + (node.withRadius ? 3 : 2), h, w];
        }
        case 'shiftRows': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          if (!Number.isInteger(node.rows)) return err(`rows must be an integer; got ${node.rows}`);
          return s;
        }
        case 'mul':
        case 'sub': {
          const a = get(node.a, 'a');
          const b = get(node.b, 'b');
          if (a === null || b === null) return null;
          const out = broadcast(a, b);
          if (out === null)
            return err(
              `cannot broadcast ${showShape(a)} with ${showShape(b)}`,
              'operands need the same rank, and each dimension equal or 1 on one side',
            );
          return out;
        }
        case 'standardize': {
          const s = get(node.input, 'input');
          if (s === null) return null;
          if (s.length === 0) return err('a scalar per sample has no channels');
          const c = s[0]!;
          for (const [name, v] of [['mean', node.mean], ['std', node.std]] as const)
            if (!(v.length === 1 || v.length === c)) return err(`${name} has ${v.length} values; expected 1 or ${c} (one per channel)`);
          if (![...node.mean, ...node.std].every(Number.isFinite)) return err('mean and std must be finite numbers');
          if (node.std.some((v) => v === 0)) return err('std must not be zero');
          return s;
        }
        case 'pow': {
          const s = get(node.input, 'input');
          if (s !== null && !Number.isFinite(node.exponent)) return err(`exponent must be finite; got ${node.exponent}`);
          return s;
        }
        case 'zeroBelow': {
          const s = get(node.input, 'input');
          if (s !== null && !Number.isFinite(node.threshold)) return err(`threshold must be finite; got ${node.threshold}`);
          return s;
        }
        case 'clamp': {
          const s = get(node.input, 'input');
          if (s === null) return null;
          if (Number.isNaN(node.min) || Number.isNaN(node.max) || !(node.min <= node.max))
            return err(`clamp needs min <= max; got [${node.min}, ${node.max}]`);
          return s;
        }
        case 'zeroWhereNaN': {
          const s = get(node.input, 'input');
          const of = get(node.of, 'of');
          if (s === null || of === null) return null;
          if (!sameShape(s, of)) return err(`of ${showShape(of)} must have the input's shape ${showShape(s)}`);
          return s;
        }
        case 'minMaxNorm': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          if (!(node.eps >= 0) || !Number.isFinite(node.eps)) return err(`eps must be a non-negative number; got ${node.eps}`);
          return s;
        }
        case 'l2Normalize': {
          const s = get(node.input, 'input');
          if (s === null) return null;
          if (s.length === 0) return err('a scalar per sample has no channels');
          if (!(node.eps >= 0) || !Number.isFinite(node.eps)) return err(`eps must be a non-negative number; got ${node.eps}`);
          return s;
        }
        case 'highPass': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          if (!(node.wHpf > 0) || !Number.isFinite(node.wHpf)) return err(`wHpf must be a positive number; got ${node.wHpf}`, 'a generator with wHpf 0 has no high-pass filter');
          return s;
        }
        case 'concatLabel': {
          const s = get(node.input, 'input');
          const l = get(node.label, 'label');
          if (!image(s) || l === null) return null;
          if (l.length !== 1) return err(`label must be a vector (N, L); got ${showShape(l)}`);
          return [s[0]! + l[0]!, s[1]!, s[2]!];
        }
        case 'add': {
          if (node.inputs.length === 0) return err('add needs at least one input');
          if (!Number.isFinite(node.scale)) return err(`scale must be finite; got ${node.scale}`);
          const ss = node.inputs.map((r, j) => get(r, `inputs[${j}]`));
          if (ss.some((x) => x === null)) return null;
          const first = ss[0]!;
          const bad = ss.findIndex((x) => !sameShape(x!, first));
          if (bad >= 0)
            return err(
              `cannot add shapes ${ss.map((x) => showShape(x!)).join(' and ')}`,
              'residual branches must keep the shape; add a 1x1 conv or pooling to the shortcut',
            );
          return first;
        }
        case 'flatten': {
          const s = get(node.input, 'input');
          if (s === null) return null;
          return [s.reduce((a, b) => a * b, 1)];
        }
        case 'stack': {
          if (node.inputs.length === 0) return err('stack needs at least one branch');
          const ss = node.inputs.map((r, j) => get(r, `inputs[${j}]`));
          if (ss.some((x) => x === null)) return null;
          const first = ss[0]!;
          if (ss.some((x) => !sameShape(x!, first)))
            return err(`branches have different shapes: ${ss.map((x) => showShape(x!)).join(', ')}`);
          return [ss.length, ...first];
        }
        case 'select': {
          const s = get(node.input, 'input');
          const ix = get(node.index, 'index');
          if (s === null || ix === null) return null;
          if (!index[node.index])
            return err(`index must be a domain index input (dtype 'index'); '${net.nodes[node.index]!.path}' is not`);
          if (s.length < 1) return err(`cannot select a branch of ${showShape(s)}`);
          return s.slice(1);
        }
        default:
          return absurd(node);
      }
    })();
    shapes.push(shape);
    index.push(node.op === 'input' && node.dtype === 'index');
  });

  const outNames = new Set<string>();
  if (net.outputs.length === 0) errors.push(specError(net.name, 'a network needs at least one output'));
  for (const o of net.outputs) {
    if (outNames.has(o.name)) errors.push(specError(`${net.name}/${o.name}`, `duplicate output name '${o.name}'`));
    outNames.add(o.name);
    if (!Number.isInteger(o.ref) || o.ref < 0 || o.ref >= net.nodes.length)
      errors.push(specError(`${net.name}/${o.name}`, `output refers to node ${o.ref}, which does not exist`));
  }
  if (errors.length > 0) return E.left(errors);
  return E.right({ shapes: shapes as Shape[], index });
};

const sameShape = (a: Shape, b: Shape): boolean =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** PyTorch broadcasting of two per-sample shapes of equal rank (each dimension equal or 1), or null. */
const broadcast = (a: Shape, b: Shape): Shape | null => {
  if (a.length !== b.length) return null;
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(x === 1 ? y : x);
  }
  return out;
};

/** A scalar-or-pair field as [h, w], or null when it is neither (an undecoded network can hold anything). */
export const pairOf = (v: unknown): readonly [number, number] | null =>
  typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number') ? [v[0] as number, v[1] as number] : null;

/** `3`, or `1x7` for a pair. */
export const show2 = (v: number | readonly [number, number]): string => (typeof v === 'number' ? `${v}` : `${v[0]}x${v[1]}`);

/** The kernel, stride and padding of a convolution or pooling node as pairs, checked (or null, reported). */
const window2 = (
  n: { readonly kernel: unknown; readonly stride: unknown; readonly padding: unknown },
  err: (message: string) => null,
): { k: readonly [number, number]; st: readonly [number, number]; p: readonly [number, number] } | null => {
  const k = pairOf(n.kernel);
  const st = pairOf(n.stride);
  const p = pairOf(n.padding);
  if (k === null || !k.every(isPosInt)) return err(`kernel size must be a positive integer or a pair of them; got ${JSON.stringify(n.kernel)}`);
  if (st === null || !st.every(isPosInt)) return err(`stride must be a positive integer or a pair of them; got ${JSON.stringify(n.stride)}`);
  if (p === null || !p.every(isNonNegInt)) return err(`padding must be a non-negative integer or a pair of them; got ${JSON.stringify(n.padding)}`);
  return { k, st, p };
};
