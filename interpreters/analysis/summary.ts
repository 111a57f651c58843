/**
 * The analysis interpreter: per layer its output shape, parameters and multiply-accumulates
 * (at batch 1), as a total fold over the node union.
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, type Result } from '../../dsl/errors.ts';
import type { Network, Node } from '../../dsl/ir.ts';
import { isWeighted } from '../../dsl/ops.ts';
import { paramCountsByNode } from '../../dsl/params.ts';
import { inferShapes, pairOf, show2, showShape, type Shape } from '../../dsl/shapes.ts';
import { reachable, refsOf } from '../../dsl/walk.ts';

export interface LayerRow {
  readonly path: string;
  readonly op: Node['op'];
  /** A short description of the layer's settings (`4x4 s2 p1, 64->128`). */
  readonly detail: string;
  readonly shape: readonly number[];
  readonly params: number;
  readonly macs: number;
  /** False for modules that exist only for their parameters (no output depends on them). */
  readonly used: boolean;
}

export interface NetworkSummary {
  readonly name: string;
  readonly inputs: ReadonlyArray<{ readonly name: string; readonly shape: readonly number[]; readonly dtype: string }>;
  readonly outputs: ReadonlyArray<{ readonly name: string; readonly shape: readonly number[] }>;
  readonly params: number;
  readonly macs: number;
  readonly layers: readonly LayerRow[];
}

/** kH * kW of a convolution. */
const area = (k: number | readonly [number, number]): number => {
  const [a, b] = pairOf(k) ?? [0, 0];
  return a * b;
};

/**
 * MACs of one node at batch 1, from its input and output shapes. Only ops with a learned weight
 * multiply (ops.ts `isWeighted`); norms, activations, pooling, resizing, merges and fixed filters
 * (the high-pass: 9 per element) count 0. A new op with a weight fails to compile here until its
 * MACs are written down.
 */
export const macsOf = (n: Node, inShape: Shape | undefined, outShape: Shape): number => {
  if (!isWeighted(n)) return 0;
  switch (n.op) {
    case 'conv2d':
      return n.outChannels * n.inChannels * area(n.kernel) * (outShape[1] ?? 0) * (outShape[2] ?? 0);
    case 'convTranspose2d':
      // Every input pixel scatters a kH x kW x outC patch.
      return n.inChannels * n.outChannels * area(n.kernel) * (inShape?.[1] ?? 0) * (inShape?.[2] ?? 0);
    case 'linear':
      return n.inFeatures * n.outFeatures;
    case 'adain':
      return n.styleDim * 2 * n.channels;
    default:
      return absurd(n);
  }
};

/** `3x3`, `1x7`. */
const kxk = (k: number | readonly [number, number]): string => {
  const [a, b] = pairOf(k) ?? [k, k];
  return `${a}x${b}`;
};

const listOf = (v: readonly number[]): string => (v.length === 1 ? `${v[0]}` : `[${v.map((x) => +x.toFixed(4)).join(', ')}]`);

export const describeNode = (n: Node): string => {
  switch (n.op) {
    case 'input':
      return n.dtype === 'index' ? 'domain index' : `input ${n.name}`;
    case 'conv2d':
    case 'convTranspose2d':
      return `${kxk(n.kernel)} s${show2(n.stride)} p${show2(n.padding)}, ${n.inChannels}->${n.outChannels}${n.bias ? '' : ', no bias'}`;
    case 'batchNorm2d':
      return `${n.channels}, eps ${n.eps}${n.affine ? '' : ', no affine'}`;
    case 'avgPool2d':
      return `${kxk(n.kernel)} s${show2(n.stride)} p${show2(n.padding)}${n.countIncludePad ? '' : ', pad not counted'}`;
    case 'maxPool2d':
      return `${kxk(n.kernel)} s${show2(n.stride)} p${show2(n.padding)}`;
    case 'resizeBilinear':
      return `${n.size !== null ? `to ${kxk(n.size)}` : `x${n.scale}`}${n.alignCorners ? ', align corners' : ''}`;
    case 'concat':
      return `${n.inputs.length} inputs`;
    case 'sliceChannels':
      return `${n.start}:${n.end}`;
    case 'zeroChannels':
      return `${n.channels.length} channels`;
    case 'addCoords':
      return n.withRadius ? 'x, y, r' : 'x, y';
    case 'shiftRows':
      return `${n.rows >= 0 ? 'up' : 'down'} ${Math.abs(n.rows)}`;
    case 'standardize':
      return `mean ${listOf(n.mean)}, std ${listOf(n.std)}`;
    case 'pow':
      return `^${n.exponent}`;
    case 'zeroBelow':
      return `< ${n.threshold}`;
    case 'clamp':
      return `[${n.min}, ${n.max}]`;
    case 'minMaxNorm':
    case 'l2Normalize':
      return `eps ${n.eps}`;
    case 'highPass':
      return `3x3 / ${n.wHpf}`;
    case 'globalAvgPool':
    case 'sumChannels':
    case 'mul':
    case 'sub':
    case 'zeroWhereNaN':
      return '';
    case 'instanceNorm':
      return `${n.channels}${n.affine ? ', affine' : ''}`;
    case 'adain':
      return `${n.channels}, style ${n.styleDim}`;
    case 'linear':
      return `${n.inFeatures}->${n.outFeatures}${n.bias ? '' : ', no bias'}`;
    case 'leakyRelu':
      return `slope ${n.alpha}`;
    case 'avgPool':
      return `${n.size}x${n.size}`;
    case 'upsampleNearest':
      return `x${n.scale} nearest`;
    case 'add':
      return n.scale === 1 ? `${n.inputs.length} inputs` : `${n.inputs.length} inputs, x${+n.scale.toFixed(6)}`;
    case 'stack':
      return `${n.inputs.length} branches`;
    case 'relu':
    case 'tanh':
    case 'concatLabel':
    case 'flatten':
    case 'select':
      return '';
    default:
      return absurd(n);
  }
};

export const summarize = (net: Network): Result<NetworkSummary> =>
  E.map((inf: { shapes: readonly Shape[] }) => {
    const live = reachable(net);
    const counts = paramCountsByNode(net);
    const layers: LayerRow[] = net.nodes.map((n, i) => {
      const first = refsOf(n)[0];
      const shape = inf.shapes[i]!;
      return {
        path: n.path,
        op: n.op,
        detail: describeNode(n),
        shape,
        params: counts[i]!,
        macs: live[i] ? macsOf(n, first === undefined ? undefined : inf.shapes[first], shape) : 0,
        used: live[i]!,
      };
    });
    return {
      name: net.name,
      inputs: net.nodes.flatMap((n, i) => (n.op === 'input' ? [{ name: n.name, shape: inf.shapes[i]!, dtype: n.dtype }] : [])),
      outputs: net.outputs.map((o) => ({ name: o.name, shape: inf.shapes[o.ref]! })),
      params: layers.reduce((a, l) => a + l.params, 0),
      macs: layers.reduce((a, l) => a + l.macs, 0),
      layers,
    };
  })(inferShapes(net));

// ---------------------------------------------------------------------------------------------
// Text rendering

export const fmtInt = (n: number): string => n.toLocaleString('en-US');

export const fmtMacs = (n: number): string =>
  n >= 1e9 ? `${(n / 1e9).toFixed(2)} G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : `${n}`;

export const renderTable = (s: NetworkSummary): string => {
  const rows = s.layers
    .filter((l) => l.op !== 'input')
    .map((l) => [
      l.path + (l.used ? '' : ' (unused)'),
      l.op + (l.detail ? ` ${l.detail}` : ''),
      showShape(l.shape),
      l.params > 0 ? fmtInt(l.params) : '',
      l.macs > 0 ? fmtMacs(l.macs) : '',
    ]);
  const head = ['layer', 'op', 'output', 'params', 'MACs'];
  const all = [head, ...rows];
  const widths = head.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  const line = (r: readonly string[]): string =>
    r.map((cell, c) => (c >= 3 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const ins = s.inputs.map((i) => `${i.name} ${i.dtype === 'index' ? '(N) index' : showShape(i.shape)}`).join(', ');
  const outs = s.outputs.map((o) => `${o.name} ${showShape(o.shape)}`).join(', ');
  return [
    `${s.name}: ${fmtInt(s.params)} parameters, ${fmtMacs(s.macs)}MACs per sample`,
    `  inputs: ${ins}`,
    `  outputs: ${outs}`,
    '',
    line(head),
    rule,
    ...rows.map(line),
    rule,
    line(['total', '', '', fmtInt(s.params), fmtMacs(s.macs)]),
  ].join('\n');
};
