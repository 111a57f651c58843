/** File access at the edge, as values: read and atomic write. */
import * as E from 'fp-ts/lib/Either.js';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { specError, type Result } from '../dsl/errors.ts';

const why = (e: unknown): string => {
  const err = e as NodeJS.ErrnoException;
  return err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : err.message;
};

export const readBytes = async (path: string): Promise<Result<Uint8Array>> => {
  try {
    return E.right(new Uint8Array(await readFile(path)));
  } catch (e) {
    return E.left([specError(path, `cannot read: ${why(e)}`)]);
  }
};

/** Write via a temporary file and rename, so a crash never leaves a half-written file. */
export const writeFileAtomic = async (path: string, data: string | Uint8Array): Promise<Result<void>> => {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(tmp, data);
    await rename(tmp, path);
    return E.right(undefined);
  } catch (e) {
    return E.left([specError(path, `cannot write: ${why(e)}`)]);
  }
};
