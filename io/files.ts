/**
 * The file-system edge of io/: read and write whole files, turning fs failures into error values.
 * Writes are atomic: the bytes go to a temporary file in the same directory, which is flushed and
 * then renamed over the target, so a reader never sees a half-written file.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { type Result, fail } from '../dsl/errors.ts';
import { readSafetensors, readSafetensorsContents, writeSafetensors, type SafetensorsContents } from './safetensors.ts';
import type { TensorMap } from './tensor.ts';
import { type TorchCheckpoint, readTorchCheckpoint } from './torch.ts';

const describeFsError = (e: unknown): string => {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no such file';
    if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
    if (code === 'EISDIR') return 'is a directory';
    return code !== undefined ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
};

/** The whole file's bytes. */
export const readBytes = async (path: string): Promise<Result<Uint8Array>> => {
  try {
    const buf = await readFile(path);
    return E.right(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  } catch (e) {
    return fail(path, `cannot read: ${describeFsError(e)}`);
  }
};

/** Write `bytes` to `path` atomically (temporary file + fsync + rename). */
export const writeBytesAtomic = async (path: string, bytes: Uint8Array): Promise<Result<void>> => {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    return E.right(undefined);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    return fail(path, `cannot write: ${describeFsError(e)}`);
  }
};

export const readSafetensorsFile = async (path: string): Promise<Result<TensorMap>> =>
  E.flatMap((bytes: Uint8Array) => readSafetensors(bytes, path))(await readBytes(path));

/** A safetensors file's tensors and `__metadata__`. */
export const readSafetensorsContentsFile = async (path: string): Promise<Result<SafetensorsContents>> =>
  E.flatMap((bytes: Uint8Array) => readSafetensorsContents(bytes, path))(await readBytes(path));

export const writeSafetensorsFile = (
  path: string,
  map: TensorMap,
  metadata?: Record<string, string>,
): Promise<Result<void>> => writeBytesAtomic(path, writeSafetensors(map, metadata));

export const readTorchCheckpointFile = async (path: string): Promise<Result<TorchCheckpoint>> =>
  E.flatMap((bytes: Uint8Array) => readTorchCheckpoint(bytes, path))(await readBytes(path));
