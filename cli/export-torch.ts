/** `starspec export-torch`: a spec as a standalone PyTorch project (models, objective, training loop). */
import * as E from 'fp-ts/lib/Either.js';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { specError, type Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { writeBytesAtomic } from '../io/files.ts';
import { emitTorch, runtimeFiles } from '../interpreters/torch/index.ts';

export const exportTorchCommand = async (spec: Spec, out: string, overwrite: boolean): Promise<Result<string>> => {
  const generated = emitTorch(spec);
  if (E.isLeft(generated)) return generated;
  const st = await stat(out).catch(() => null);
  if (st !== null && !st.isDirectory()) return E.left([specError(out, 'exists and is not a folder', 'choose another --out')]);
  if (st !== null && !overwrite) {
    const entries = await readdir(out);
    const ours = entries.filter((e) => generated.right.has(e) || e === 'train.py');
    if (ours.length > 0) return E.left([specError(out, 'already holds an export', 'pass --overwrite to replace it, or choose another --out')]);
  }
  await mkdir(out, { recursive: true });
  const files = new Map([...generated.right, ...(await runtimeFiles())]);
  for (const [name, text] of files) {
    const w = await writeBytesAtomic(join(out, name), new TextEncoder().encode(text));
    if (E.isLeft(w)) return w;
  }
  return E.right(`${files.size} files: ${[...files.keys()].join(', ')}`);
};
