/** `starspec import-torch`: an official PyTorch checkpoint -> a safetensors weights file. */
import * as E from 'fp-ts/lib/Either.js';
import { checkNetworks } from '../dsl/check.ts';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Network, Spec } from '../dsl/ir.ts';
import { readTorchCheckpointFile, writeSafetensorsFile } from '../io/files.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { coversKeys, fitWeights, withPrefix } from '../io/weights.ts';

const netNamed = (spec: Spec, name: string): Result<Network> => {
  const n = spec.networks.find((x) => x.name === name);
  return n ? E.right(n) : E.left([specError('--net', `no network '${name}' in ${spec.name}`, `networks: ${spec.networks.map((x) => x.name).join(', ')}`)]);
};

/** Read, match every key and shape against the spec, write. Returns a one-line description. */
export const importTorch = async (spec: Spec, ckptPath: string, netName: string | undefined, out: string): Promise<Result<string>> => {
  const ckpt = await readTorchCheckpointFile(ckptPath);
  if (E.isLeft(ckpt)) return ckpt;
  const count = (m: TensorMap): number => m.size;
  let result: Result<{ tensors: TensorMap; what: string; nets: readonly string[] }>;
  if (ckpt.right.kind === 'nested') {
    const nets = ckpt.right.nets;
    if (netName !== undefined) {
      const sd = nets.get(netName);
      if (!sd) return E.left([specError(ckptPath, `holds no '${netName}'`, `it holds ${[...nets.keys()].join(', ')}`)]);
      result = E.flatMap((n: Network) => E.map((t: TensorMap) => ({ tensors: t, what: `${netName} (${count(t)} tensors)`, nets: [netName] }))(fitWeights(n, sd, `${ckptPath} [${netName}]`)))(netNamed(spec, netName));
    } else {
      const errors: SpecError[] = [];
      const all = new Map<string, HostTensor>();
      const names: string[] = [];
      for (const [name, sd] of nets) {
        const n = spec.networks.find((x) => x.name === name);
        if (!n) {
          errors.push(specError(ckptPath, `holds '${name}', which ${spec.name} does not have`, `networks: ${spec.networks.map((x) => x.name).join(', ')}`));
          continue;
        }
        const fit = fitWeights(n, sd, `${ckptPath} [${name}]`);
        if (E.isLeft(fit)) errors.push(...fit.left);
        else {
          for (const [k, v] of withPrefix(fit.right, name)) all.set(k, v);
          names.push(name);
        }
      }
      result = errors.length > 0 ? E.left(errors) : E.right({ tensors: all, what: `${names.join(', ')} with NAME. prefixes (${all.size} tensors)`, nets: names });
    }
  } else {
    const flat = ckpt.right.tensors;
    // `{'state_dict': sd}` files (wing.ckpt's form) say so in the summary line.
    const from = ckpt.right.under !== undefined ? `, from its '${ckpt.right.under}' entry` : '';
    if (netName !== undefined) {
      result = E.flatMap((n: Network) => E.map((t: TensorMap) => ({ tensors: t, what: `${netName} (${count(t)} tensors${from})`, nets: [netName] }))(fitWeights(n, flat, ckptPath)))(netNamed(spec, netName));
    } else {
      const fits = spec.networks.filter((n) => coversKeys(n, flat)).map((n) => [n, fitWeights(n, flat, ckptPath)] as const);
      const good = fits.filter(([, r]) => E.isRight(r));
      if (good.length === 1) {
        const [n, r] = good[0]!;
        result = E.map((t: TensorMap) => ({ tensors: t, what: `${n.name} (${t.size} tensors${from})`, nets: [n.name] }))(r);
      } else if (good.length > 1) {
        result = E.left([specError(ckptPath, `fits several networks (${good.map(([n]) => n.name).join(', ')})`, 'pick one with --net')]);
      } else {
        const near = fits.find(([, r]) => E.isLeft(r));
        result = near
          ? (near[1] as Result<never>)
          : E.left([specError(ckptPath, `matches no network of ${spec.name}: its keys (e.g. ${[...flat.keys()].slice(0, 3).join(', ')}) are not a network's parameters`, 'check the spec and --set values, or name the network with --net')]);
      }
    }
  }
  if (E.isLeft(result)) return result;
  // Settings are validated for the networks actually imported (not every network of the spec).
  const checked = checkNetworks(spec, result.right.nets);
  if (E.isLeft(checked)) return checked;
  const w = await writeSafetensorsFile(out, result.right.tensors, { source: ckptPath, spec: spec.name });
  return E.map(() => result.right.what)(w);
};
