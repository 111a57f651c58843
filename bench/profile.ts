/**
 * Per-kernel timing for `--profile`: every kernel of the active tfjs backend is re-registered
 * wrapped in a timer that keeps a call stack, so composed kernels (the convolution gradients of
 * interpreters/tfjs/kernels/conv-grad.ts run nested Conv2D / Transpose kernels) are split into
 * self time and the time of what they call. wasm and cpu kernels are synchronous, so wall time
 * is the kernel's time.
 *
 * Convolutions and matrix products also count their FLOPs (2 x MACs of the logical operation, at
 * the outermost convolution-like kernel only, so a composed gradient is not counted twice).
 */
import * as tf from '@tensorflow/tfjs-core';

interface Row {
  calls: number;
  selfMs: number;
}

interface ConvRow {
  calls: number;
  ms: number;
  gflop: number;
}

export interface KernelProfile {
  /** Clear the counters. */
  readonly reset: () => void;
  /** Self time per kernel name, and convolution work per outermost conv-like kernel name. */
  readonly report: () => { totalMs: number; kernels: Array<{ name: string } & Row>; convs: Array<{ name: string } & ConvRow> };
  /** Put the original kernels back. */
  readonly restore: () => void;
}

const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

type Info = { shape: number[] };
type Params = { inputs: Record<string, Info>; attrs?: Record<string, unknown> };

/** Logical FLOPs of a convolution-like or matmul kernel call (tfjs NHWC layouts), else null. */
export const kernelFlops = (name: string, p: Params, out: Info | Info[]): number | null => {
  const o = Array.isArray(out) ? out[0] : out;
  const i = p.inputs;
  const a = p.attrs ?? {};
  switch (name) {
    case 'Conv2D':
    case 'FusedConv2D': {
      const f = i['filter']!.shape; // kh, kw, in, out
      return 2 * prod(o!.shape) * f[0]! * f[1]! * f[2]!;
    }
    case 'Conv2DBackpropInput': {
      // dy (N, Ho, Wo, out), filter (kh, kw, in, out): as many MACs as the forward conv.
      const f = i['filter']!.shape;
      return 2 * prod(i['dy']!.shape) * f[0]! * f[1]! * f[2]!;
    }
    case 'Conv2DBackpropFilter': {
      const f = a['filterShape'] as number[];
      return 2 * prod(i['dy']!.shape) * f[0]! * f[1]! * f[2]!;
    }
    case 'DepthwiseConv2dNative': {
      const f = i['filter']!.shape;
      return 2 * prod(o!.shape) * f[0]! * f[1]!;
    }
    case 'BatchMatMul':
    case '_FusedMatMul': {
      const x = i['a']!.shape;
      const k = a['transposeA'] ? x[x.length - 2]! : x[x.length - 1]!;
      return 2 * prod(o!.shape) * k;
    }
    default:
      return null;
  }
};

const CONV_LIKE: ReadonlySet<string> = new Set([
  'Conv2D',
  'FusedConv2D',
  'Conv2DBackpropInput',
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNative',
  'BatchMatMul',
  '_FusedMatMul',
]);

export const installKernelProfile = (backendName: string): KernelProfile => {
  const originals = tf.getKernelsForBackend(backendName);
  const rows = new Map<string, Row>();
  const convs = new Map<string, ConvRow>();
  // Open kernels: the time of their nested kernels (inclusive -> self time) and whether they are
  // conv-like (FLOPs are counted at the outermost conv-like kernel only).
  const stack: Array<{ child: number; conv: boolean }> = [];
  for (const k of originals) {
    const orig = k.kernelFunc;
    const conv = CONV_LIKE.has(k.kernelName);
    tf.unregisterKernel(k.kernelName, backendName);
    tf.registerKernel({
      ...k,
      kernelFunc: (params) => {
        const outermostConv = conv && !stack.some((s) => s.conv);
        const frame = { child: 0, conv };
        stack.push(frame);
        const t0 = performance.now();
        let out: ReturnType<typeof orig> | undefined;
        try {
          out = orig(params);
          return out;
        } finally {
          const ms = performance.now() - t0;
          stack.pop();
          if (stack.length > 0) stack[stack.length - 1]!.child += ms;
          const r = rows.get(k.kernelName) ?? { calls: 0, selfMs: 0 };
          r.calls++;
          r.selfMs += ms - frame.child;
          rows.set(k.kernelName, r);
          if (outermostConv && out !== undefined) {
            const fl = kernelFlops(k.kernelName, params as unknown as Params, out as unknown as Info | Info[]);
            if (fl !== null) {
              const c = convs.get(k.kernelName) ?? { calls: 0, ms: 0, gflop: 0 };
              c.calls++;
              c.ms += ms;
              c.gflop += fl / 1e9;
              convs.set(k.kernelName, c);
            }
          }
        }
      },
    });
  }
  return {
    reset: () => {
      rows.clear();
      convs.clear();
    },
    report: () => {
      const kernels = [...rows].map(([name, r]) => ({ name, ...r })).sort((x, y) => y.selfMs - x.selfMs);
      const cs = [...convs].map(([name, r]) => ({ name, ...r })).sort((x, y) => y.ms - x.ms);
      return { totalMs: kernels.reduce((s, r) => s + r.selfMs, 0), kernels, convs: cs };
    },
    restore: () => {
      for (const k of originals) {
        tf.unregisterKernel(k.kernelName, backendName);
        tf.registerKernel(k);
      }
    },
  };
};
