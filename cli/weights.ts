/**
 * `--weights`, repeatable, for `run`, `export`, `translate`, `sample` and `evaluate`: each value a
 * run directory of `starspec train` (its checkpoint; its spec.json must equal the spec given) or a
 * safetensors weights file (official names, one network's or several under `NAME.` prefixes; a
 * starspec checkpoint). Each source gives its deployment weights (EMA copies where a checkpoint
 * keeps them); the sources are merged, and a tensor name in two of them is an error naming both.
 */
import * as E from 'fp-ts/lib/Either.js';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { readSafetensorsContentsFile } from '../io/files.ts';
import type { TensorMap } from '../io/tensor.ts';
import { deploymentWeights, mergeWeights } from '../io/weights.ts';
import { readSpecFile, sameExperiment } from './load.ts';

/** A run's checkpoint file (cli/train.ts's CHECKPOINT; not imported: that loads the training stack). */
export const CHECKPOINT = 'checkpoint.safetensors';

export interface WeightSource {
  /** The --weights value. */
  readonly arg: string;
  /** The file read (a run directory's checkpoint). */
  readonly file: string;
  /** Deployment weights: EMA copies where the checkpoint keeps them, under `NAME.`. */
  readonly tensors: TensorMap;
  /** Networks whose EMA copy was taken. */
  readonly emaNets: ReadonlySet<string>;
  /** A checkpoint's training step. */
  readonly step: string | undefined;
}

export interface Weights {
  readonly tensors: TensorMap;
  readonly sources: readonly WeightSource[];
}

const statOf = (p: string) => stat(p).catch(() => null);

const readSource = async (spec: Spec, arg: string): Promise<Result<WeightSource>> => {
  const st = await statOf(arg);
  if (st === null) return E.left([specError(`--weights ${arg}`, 'no such file or folder', 'pass a run directory of `starspec train` or a .safetensors weights file')]);
  let file = arg;
  if (st.isDirectory()) {
    file = join(arg, CHECKPOINT);
    if ((await statOf(join(arg, 'spec.json'))) === null || (await statOf(file)) === null)
      return E.left([specError(`--weights ${arg}`, `is not a run directory (it needs spec.json and ${CHECKPOINT})`, 'pass the --out directory of `starspec train`, or a weights file')]);
    const runSpec = await readSpecFile(join(arg, 'spec.json'));
    if (E.isLeft(runSpec)) return runSpec;
    if (!sameExperiment(runSpec.right, spec))
      return E.left([
        specError(
          `--weights ${arg}`,
          `was trained with another spec or settings than ${spec.name} as given`,
          `give the spec and --set values it was trained with (see its run.json), or its own spec: \`${join(arg, 'spec.json')}\``,
        ),
      ]);
  }
  const contents = await readSafetensorsContentsFile(file);
  if (E.isLeft(contents)) return contents;
  const raw = contents.right.tensors;
  const emaNets = new Set([...raw.keys()].filter((k) => k.startsWith('ema.')).map((k) => k.slice(4, k.indexOf('.', 4))));
  return E.right({ arg, file, tensors: deploymentWeights(raw, contents.right.metadata), emaNets, step: contents.right.metadata['step'] });
};

/** Read and merge every `--weights` value (at least one). */
export const readWeights = async (spec: Spec, args: readonly string[]): Promise<Result<Weights>> => {
  if (args.length === 0) return E.left([specError('--weights', 'is required', 'a run directory of `starspec train`, or a .safetensors weights file (repeatable)')]);
  const errors: SpecError[] = [];
  const sources: WeightSource[] = [];
  for (const a of args) {
    const r = await readSource(spec, a);
    if (E.isLeft(r)) errors.push(...r.left);
    else sources.push(r.right);
  }
  if (errors.length > 0) return E.left(errors);
  return E.map((tensors: TensorMap) => ({ tensors, sources }))(mergeWeights(sources.map((s) => ({ origin: s.arg, tensors: s.tensors }))));
};

/** The files in a message: `a.safetensors` or `a.safetensors + b.safetensors`. */
export const describeSources = (w: Weights): string => w.sources.map((s) => s.file).join(' + ');
