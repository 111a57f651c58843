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
          return node.shape;
        }
        case 'conv2d':
        case 'convTranspose2d': {
          const s = get(node.input, 'input');
          if (!image(s)) return null;
          const { kernel: k, stride: st, padding: p } = node;
          if (!isPosInt(node.inChannels) || !isPosInt(node.outChannels))
            return err(`channels must be positive integers (in ${node.inChannels}, out ${node.outChannels})`);
          if (!isPosInt(k)) return err(`kernel size must be a positive integer; got ${k}`);
          if (!isPosInt(st)) return err(`stride must be a positive integer; got ${st}`);
          if (!isNonNegInt(p)) return err(`padding must be a non-negative integer; got ${p}`);
          if (!channels(s, node.inChannels, 'inChannels')) return null;
          const [, h, w] = s as [number, number, number];
          if (node.op === 'conv2d') {
            if (h + 2 * p < k || w + 2 * p < k)
              return err(
                `kernel ${k} is larger than the padded input ${h + 2 * p}x${w + 2 * p} (input ${showShape(s)}, padding ${p})`,
                'use a smaller kernel, more padding, or a larger image / fewer downsampling blocks',
              );
            return [node.outChannels, convOut(h, k, st, p), convOut(w, k, st, p)];
          }
          if (p >= k) return err(`padding ${p} must be smaller than the kernel ${k}`);
          const oh = convTOut(h, k, st, p);
          const ow = convTOut(w, k, st, p);
          if (oh < 1 || ow < 1) return err(`output would be ${oh}x${ow}`);
          return [node.outChannels, oh, ow];
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
