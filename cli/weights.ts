/**
 * `--weights`, repeatable, for `run`, `export`, `translate`, `sample` and `evaluate`: each value a
 * run directory of `starspec train` (its checkpoint; its spec.json must equal the spec given) or a
 * safetensors weights file (official names, one network's or several under `NAME.` prefixes; a
 * starspec checkpoint). Each source gives its deployment weights (EMA copies where a checkpoint
 * keeps them; one network's unprefixed file under that network's prefix); the sources are merged,
 * and a tensor name in two of them is an error naming both.
 */
import * as E from 'fp-ts/lib/Either.js';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Frozen, Network, Spec } from '../dsl/ir.ts';
import { readSafetensorsContentsFile } from '../io/files.ts';
import type { TensorMap } from '../io/tensor.ts';
import { parameters } from '../dsl/params.ts';
import { frozenNets } from '../dsl/walk.ts';
import { networksOf, pipelineOf } from '../dsl/pipelines.ts';
import { coversKeys, deploymentWeights, mergeWeights, weightsOfNetworks, withPrefix } from '../io/weights.ts';
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

/**
 * One network's official names (`import-torch --net` output: no `NAME.` prefix) given beside other
 * files: the one network of the spec whose parameters the file holds names it, so
 * `--weights nets_ema.safetensors --weights fan.safetensors` merges. Anything else is as it is.
 */
const named = (spec: Spec, tensors: TensorMap): TensorMap => {
  const keys = [...tensors.keys()];
  if (spec.networks.some((n) => keys.some((k) => k.startsWith(`${n.name}.`)))) return tensors;
  const fits = spec.networks.filter((n) => coversKeys(n, tensors));
  return fits.length === 1 ? withPrefix(tensors, fits[0]!.name) : tensors;
};

/** Read and merge every `--weights` value (at least one). */
export const readWeights = async (spec: Spec, args: readonly string[]): Promise<Result<Weights>> => {
  if (args.length === 0) return E.left([specError('--weights', 'is required', 'a run directory of `starspec train`, or a .safetensors weights file (repeatable)')]);
  const errors: SpecError[] = [];
  const sources: WeightSource[] = [];
  for (const a of args) {
    const r = await readSource(spec, a);
    if (E.isLeft(r)) errors.push(...r.left);
    else sources.push(args.length > 1 ? { ...r.right, tensors: named(spec, r.right.tensors) } : r.right);
  }
  if (errors.length > 0) return E.left(errors);
  return E.map((tensors: TensorMap) => ({ tensors, sources }))(mergeWeights(sources.map((s) => ({ origin: s.arg, tensors: s.tensors }))));
};

/** The files in a message: `a.safetensors` or `a.safetensors + b.safetensors`. */
export const describeSources = (w: Weights): string => w.sources.map((s) => s.file).join(' + ');

/** A frozen network's weights come from elsewhere (the FAN: the published wing.ckpt): say where. */
const frozenMissing = (files: string, f: Frozen): SpecError => specError(files, `has no weights for network '${f.net}'`, `give ${f.source}`);

/**
 * Each network's weights in the merged `--weights` (`weightsOfNetworks`: `NAME.`-prefixed, or one
 * network's official names when just that one is used), found but not yet validated; a network
 * with none of its parameters there is an error saying what to pass.
 */
export const findNetworkWeights = (spec: Spec, w: Weights, nets: readonly Network[]): Result<ReadonlyMap<string, TensorMap>> => {
  const files = describeSources(w);
  const found = weightsOfNetworks(nets, w.tensors);
  const errors: SpecError[] = [];
  for (const net of nets) {
    const t = found.get(net.name)!;
    const keys = parameters(net).map((p) => p.key);
    const frozen = frozenNets(spec).find((f) => f.net === net.name);
    if (t.size === 0)
      errors.push(
        frozen !== undefined
          ? frozenMissing(files, frozen)
          : specError(
              files,
              `has no weights for network '${net.name}'`,
              nets.length > 1
                ? `pass a file holding ${nets.map((n) => n.name).join(', ')} under NAME. prefixes (\`starspec import-torch\` without --net writes one from nets_ema), a run directory, or one such file per network`
                : 'pass its weights file, or a run directory',
            ),
      );
    else if (!keys.some((k) => t.has(k)))
      errors.push(
        specError(
          files,
          `has no weights for ${spec.name}'s network '${net.name}': none of its ${keys.length} parameters (${keys.slice(0, 2).join(', ')}, ...) is there`,
          'these weights belong to another architecture: check the spec and --set values they were made with',
        ),
      );
  }
  return errors.length > 0 ? E.left(errors) : E.right(found);
};

/**
 * Weights holding every network a runnable name (`run`/`export --net`) calls but a frozen one:
 * the error says where the frozen network's weights come from (the FAN: the published wing.ckpt)
 * instead of listing its missing keys. Any other mismatch is left to the network's own check.
 */
export const checkFrozenWeights = (spec: Spec, w: Weights, name: string): Result<void> => {
  const resolved = pipelineOf(spec, name);
  if (resolved === undefined) return E.right(undefined); // the caller reports the unknown name
  const called = new Set(networksOf(resolved.pipeline));
  const nets = spec.networks.filter((n) => called.has(n.name));
  const found = weightsOfNetworks(nets, w.tensors);
  const given = (n: Network): boolean => parameters(n).some((p) => found.get(n.name)!.has(p.key));
  const frozen = new Map(frozenNets(spec).map((f) => [f.net, f]));
  // Only when the rest is there: otherwise the weights' whole mismatch is the message.
  if (!nets.every((n) => frozen.has(n.name) || given(n))) return E.right(undefined);
  const errors = nets.filter((n) => frozen.has(n.name) && !given(n)).map((n) => frozenMissing(describeSources(w), frozen.get(n.name)!));
  return errors.length > 0 ? E.left(errors) : E.right(undefined);
};

/** `EMA weights of step 2`, `weights`: what the networks were given. */
export const describeWeights = (w: Weights, nets: readonly Network[]): string => {
  const ema = nets.filter((n) => w.sources.some((s) => s.emaNets.has(n.name))).length;
  const step = w.sources.find((s) => s.step !== undefined)?.step;
  return `${ema === nets.length ? 'EMA weights' : ema > 0 ? 'EMA weights where present' : 'weights'}${step !== undefined ? ` of step ${step}` : ''}`;
};
