/**
 * Parameters and buffers as data: which state_dict keys each node owns, with PyTorch shapes.
 * Derived from node fields alone (no shape inference needed), so weight import, export and
 * analysis agree on names by construction.
 */
import { absurd } from './errors.ts';
import type { Network, Node } from './ir.ts';

export interface ParamSpec {
  /** The official state_dict key, e.g. `decode.3.norm1.fc.weight`. */
  readonly key: string;
  /** PyTorch layout: OIHW conv kernels, (in, out, kH, kW) transposed-conv kernels, (out, in) linear. */
  readonly shape: readonly number[];
  /** Its kind, which with the network's init scheme decides fresh values (see Network.init). */
  readonly role: 'weight' | 'bias' | 'scale' | 'shift';
  /** Legacy shorthand of `role` under the `he` scheme. */
  readonly init: 'he' | 'zeros' | 'ones';
  /** Fan-in for He initialisation. */
  readonly fanIn: number;
}

export const paramsOfNode = (n: Node): readonly ParamSpec[] => {
  switch (n.op) {
    case 'conv2d': {
      const fanIn = n.inChannels * n.kernel * n.kernel;
      const w: ParamSpec = {
        key: `${n.path}.weight`,
        shape: [n.outChannels, n.inChannels, n.kernel, n.kernel],
        init: 'he',
        role: 'weight',
        fanIn,
      };
      return n.bias ? [w, { key: `${n.path}.bias`, shape: [n.outChannels], init: 'zeros', role: 'bias', fanIn }] : [w];
    }
    case 'convTranspose2d': {
      // PyTorch's ConvTranspose2d weight is (in, out, kH, kW); its fan-in is computed from dim 1.
      const fanIn = n.outChannels * n.kernel * n.kernel;
      const w: ParamSpec = {
        key: `${n.path}.weight`,
        shape: [n.inChannels, n.outChannels, n.kernel, n.kernel],
        init: 'he',
        role: 'weight',
        fanIn,
      };
      return n.bias ? [w, { key: `${n.path}.bias`, shape: [n.outChannels], init: 'zeros', role: 'bias', fanIn }] : [w];
    }
    case 'instanceNorm':
      return n.affine
        ? [
            { key: `${n.path}.weight`, shape: [n.channels], init: 'ones', role: 'scale', fanIn: 1 },
            { key: `${n.path}.bias`, shape: [n.channels], init: 'zeros', role: 'shift', fanIn: 1 },
          ]
        : [];
    case 'adain':
      return [
        { key: `${n.path}.fc.weight`, shape: [2 * n.channels, n.styleDim], init: 'he', role: 'weight', fanIn: n.styleDim },
        { key: `${n.path}.fc.bias`, shape: [2 * n.channels], init: 'zeros', role: 'bias', fanIn: n.styleDim },
      ];
    case 'linear': {
      const w: ParamSpec = {
        key: `${n.path}.weight`,
        shape: [n.outFeatures, n.inFeatures],
        init: 'he',
        role: 'weight',
        fanIn: n.inFeatures,
      };
      return n.bias ? [w, { key: `${n.path}.bias`, shape: [n.outFeatures], init: 'zeros', role: 'bias', fanIn: n.inFeatures }] : [w];
    }
    case 'input':
    case 'relu':
    case 'leakyRelu':
    case 'tanh':
    case 'avgPool':
    case 'upsampleNearest':
    case 'concatLabel':
    case 'add':
    case 'flatten':
    case 'stack':
    case 'select':
      return [];
    default:
      return absurd(n);
  }
};

/** Buffers official checkpoints carry that computation ignores (accepted on import, never used). */
export const buffersOfNode = (n: Node): readonly string[] =>
  n.op === 'instanceNorm' && n.runningStats
    ? [`${n.path}.running_mean`, `${n.path}.running_var`, `${n.path}.num_batches_tracked`]
    : [];

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Every parameter of a network in node order (the state_dict order for the official networks). */
export const parameters = (net: Network): readonly ParamSpec[] => net.nodes.flatMap(paramsOfNode);

export const ignoredKeys = (net: Network): ReadonlySet<string> =>
  new Set([...net.nodes.flatMap(buffersOfNode), ...net.ignoredBuffers]);

export const parameterCount = (net: Network): number =>
  parameters(net).reduce((a, p) => a + numel(p.shape), 0);
