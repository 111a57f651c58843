/**
 * What the benchmark measures: the spec settings of each configuration, a cost model (model
 * FLOPs from the analysis interpreter's MAC counts) that picks batch sizes and skips what would
 * take too long on this machine, and the list of cases.
 */
import * as E from 'fp-ts/lib/Either.js';
import type { Spec } from '../dsl/ir.ts';
import { buildSpec } from '../dsl/settings.ts';
import { summarize } from '../interpreters/analysis/summary.ts';
import { builtinSpecs } from '../specs/index.ts';

export type SpecName = 'stargan-v1' | 'stargan-v2';
export const SPEC_NAMES: readonly SpecName[] = ['stargan-v1', 'stargan-v2'];
export type Kind = 'forward' | 'train_step' | 'onnx_forward';
export const KINDS: readonly Kind[] = ['forward', 'train_step', 'onnx_forward'];
export type BackendKey = 'wasm' | 'cpu' | 'onnxruntime-node';

/** A tfjs backend (or onnxruntime) with its thread count. */
export interface Engine {
  readonly backend: BackendKey;
  readonly threads: number;
}

export const engineLabel = (e: Engine): string => `${e.backend}:${e.threads}`;

/** One measurement to take. */
export interface Case {
  readonly spec: SpecName;
  readonly kind: Kind;
  readonly size: number;
  readonly batch: number;
  readonly engine: Engine;
  /** Model GFLOP of one timed call (see `modelGflop`). */
  readonly gflop: number;
}

/** A measurement not taken, and why. */
export interface Skip {
  readonly spec: SpecName;
  readonly kind: Kind;
  readonly size: number;
  readonly engine: string;
  readonly reason: string;
}

/** StarGAN v1's discriminator needs image_size / 2^repeat >= 1: the official 6, fewer below 64 px. */
export const v1DRepeat = (size: number): number => Math.min(6, Math.floor(Math.log2(size)));

/**
 * The official default widths for each image size: v1 conv_dim 64, 6 residual blocks, CelebA's
 * 5 attributes, n_critic 1 (so one iteration is one D and one G update); v2 base width
 * 2^14 / size up to 512, two domains, w_hpf 0 (the AFHQ recipe: no FAN masks).
 */
export const overridesFor = (spec: SpecName, size: number, batch: number): Record<string, unknown> =>
  spec === 'stargan-v1'
    ? { imageSize: size, dRepeatNum: v1DRepeat(size), nCritic: 1, batchSize: batch }
    : { imageSize: size, wHpf: 0, numDomains: 2, batchSize: batch };

export const specFor = (spec: SpecName, size: number, batch: number, extra: Record<string, unknown> = {}): Spec => {
  const def = builtinSpecs.get(spec);
  if (!def) throw new Error(`unknown spec ${spec}`);
  const r = buildSpec(def, { ...overridesFor(spec, size, batch), ...extra });
  if (E.isLeft(r)) throw new Error(`${spec} at ${size} px: ${r.left.map((e) => e.message).join('; ')}`);
  return r.right;
};

/** Per-image GMACs of each network of a spec at this size (batch 1). */
export const gmacsPerImage = (spec: SpecName, size: number): ReadonlyMap<string, number> => {
  const s = specFor(spec, size, 1);
  const out = new Map<string, number>();
  for (const n of s.networks) {
    const r = summarize(n);
    if (E.isLeft(r)) throw new Error(`${spec} ${n.name}: ${r.left.map((e) => e.message).join('; ')}`);
    out.set(n.name, r.right.macs / 1e9);
  }
  return out;
};

/**
 * Model GFLOP (2 x MACs) of one call, counting a backward pass as twice its forward and a
 * gradient penalty (a double backward) as about four forwards more:
 * - forward: the generator, once.
 * - v1 iteration: D phase G (no grad) + D(x) + D(fake) + D(x_hat) with GP, each with backward,
 *   ~ G + 10 D; G phase G(x) and G(fake) with backward + D(fake) with backward, ~ 6 G + 3 D.
 * - v2 iteration: 2 D phases (G, F or E without grad; D(x) with R1; D(fake) with backward),
 *   ~ G + E + 10 D each; 2 G phases (G three times, two with backward; E twice or three times;
 *   D once with backward), ~ 7 G + 6 E + 3 D each.
 * An estimate for reading GFLOP/s off the table, not an exact count of either side's kernels.
 */
export const modelGflop = (spec: SpecName, kind: Kind, size: number, batch: number): number => {
  const m = gmacsPerImage(spec, size);
  const g = m.get('generator') ?? 0;
  const d = m.get('discriminator') ?? 0;
  const e = m.get('style_encoder') ?? 0;
  const macs = kind !== 'train_step' ? g : spec === 'stargan-v1' ? 7 * g + 13 * d : 2 * (g + e + 10 * d) + 2 * (7 * g + 6 * e + 3 * d);
  return 2 * macs * batch;
};

export interface PlanOptions {
  readonly specs: readonly SpecName[];
  readonly sizes: readonly number[];
  readonly kinds: readonly Kind[];
  /** tfjs engines; onnxruntime is added for onnx_forward. */
  readonly engines: readonly Engine[];
  readonly onnxThreads: number;
  /** A fixed batch for every case (else chosen by the cost model). */
  readonly batch: number | null;
  /**
   * Largest model GFLOP per timed call, per spec and kind, before the batch is halved or the case
   * is skipped.
   */
  readonly capGflop: Readonly<Record<SpecName, Readonly<Record<Kind, number>>>>;
  /** The stock cpu backend: largest image size it is run at. */
  readonly cpuMaxSize: number;
  /** The stock cpu backend: largest model GFLOP per timed call. */
  readonly cpuCapGflop: number;
}

/** The batch the official code trains with: v1 16 (8 here, the target case), v2 8. */
export const NOMINAL_BATCH = 8;

/**
 * Largest batch in 8, 4, 2, 1 whose call fits the cap; null if even batch 1 does not. The
 * target case (v1 training at 64 px) keeps batch 8.
 */
export const chooseBatch = (spec: SpecName, kind: Kind, size: number, cap: number): number | null => {
  if (spec === 'stargan-v1' && kind === 'train_step' && size === 64) return NOMINAL_BATCH;
  for (const b of [8, 4, 2, 1]) if (modelGflop(spec, kind, size, b) <= cap) return b;
  return null;
};

export const plan = (o: PlanOptions): { cases: Case[]; skips: Skip[] } => {
  const cases: Case[] = [];
  const skips: Skip[] = [];
  for (const spec of o.specs)
    for (const size of o.sizes)
      for (const kind of o.kinds) {
        const cap = o.capGflop[spec][kind];
        const batch = o.batch ?? chooseBatch(spec, kind, size, cap);
        const all = kind === 'onnx_forward' ? [{ backend: 'onnxruntime-node' as const, threads: o.onnxThreads }] : o.engines;
        if (batch === null) {
          const g1 = modelGflop(spec, kind, size, 1);
          skips.push({
            spec,
            kind,
            size,
            engine: all.map(engineLabel).join(', '),
            reason: `~${g1.toFixed(0)} model GFLOP per call even at batch 1 (cap ${cap}): minutes per repetition on this machine; pass --batch 1 to run it anyway`,
          });
          continue;
        }
        for (const engine of all) {
          const gflop = modelGflop(spec, kind, size, batch);
          if (engine.backend === 'cpu') {
            if (size > o.cpuMaxSize || gflop > o.cpuCapGflop) {
              skips.push({
                spec,
                kind,
                size,
                engine: engineLabel(engine),
                reason: `the stock cpu backend runs ~1 GFLOP/s: ~${gflop.toFixed(0)} GFLOP per call would take ~${Math.round(gflop)} s per repetition (limit: ${o.cpuMaxSize} px, ${o.cpuCapGflop} GFLOP; --cpu-max-size / --cpu-cap)`,
              });
              continue;
            }
          }
          cases.push({ spec, kind, size, batch, engine, gflop });
        }
      }
  return { cases, skips };
};
