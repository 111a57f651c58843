/**
 * Loading a user's spec module (`.ts`, `.mts`, `.cts`, `.js`, `.mjs`, `.cjs`) at run time, the way
 * vite and vitest load their config files: esbuild bundles the file with its relative imports
 * into one ES module, which is written next to the spec (so the bare imports left in it resolve
 * from the user's own node_modules), imported, and deleted.
 *
 * Why not a global TypeScript loader (tsx's `register()`): the bundle is ESM whatever the user's
 * project is (a `.ts` file in a CommonJS project failed as "Cannot require() ES Module ... in a
 * cycle"), nothing is hooked into the rest of the process, and esbuild reports syntax errors and
 * unresolvable imports with file, line and column before anything runs.
 *
 * `starspec` and `starspec/<entry>` imports are bound to the starspec that is running (this
 * package's own entries, read from its package.json `exports`), so a spec shares the CLI's module
 * instances, and a spec in this repository (`examples/`) works on a clean clone, where the entries
 * are the TypeScript sources and no `dist/` exists yet.
 */
import type { Message, Plugin } from 'esbuild';
import * as E from 'fp-ts/lib/Either.js';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { stat, unlink, writeFile } from 'node:fs/promises';
import { createRequire, isBuiltin } from 'node:module';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';

export const SPEC_MODULE_EXTENSIONS: readonly string[] = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'];

/**
 * How long a spec module's top-level code may take to finish loading (seconds; env
 * STARSPEC_SPEC_TIMEOUT). A top-level `await` on a promise nothing will settle is found at once
 * (the event loop empties); one that waits on a timer or I/O is stopped after this.
 */
export const SPEC_LOAD_TIMEOUT = 60;

/** What a spec module or build() calling `process.exit` throws instead (see withoutExit). */
export class SpecExit extends Error {
  constructor(readonly code: unknown) {
    super(`called process.exit(${code === undefined ? '' : String(code)}); a spec must return its value, not end the process`);
  }
}

/**
 * Run `f` (a spec's top-level code, its build()) with `process.exit` throwing a SpecExit: a spec
 * that exits would otherwise end the command, even with status 0, as if it had succeeded.
 */
export const withoutExit = async <A>(f: () => Promise<A> | A): Promise<A> => {
  const real = process.exit;
  process.exit = ((code?: unknown) => {
    throw new SpecExit(code);
  }) as typeof process.exit;
  try {
    return await f();
  } finally {
    process.exit = real;
  }
};

/**
 * `p`, or a reason it will not settle: the event loop emptied while waiting (a top-level await on
 * a promise nothing settles: Node would exit with status 13 and no message), or `seconds` passed.
 */
const settles = <A>(p: Promise<A>, seconds: number): Promise<{ readonly value: A } | { readonly stuck: string }> =>
  new Promise((resolve, reject) => {
    let done = false;
    const finish = (): boolean => {
      if (done) return false;
      done = true;
      process.off('beforeExit', onIdle);
      clearTimeout(timer);
      return true;
    };
    const onIdle = (): void => {
      if (finish()) resolve({ stuck: 'its top-level code awaits a promise that never settles (nothing is left that could settle it)' });
    };
    process.on('beforeExit', onIdle);
    const timer = setTimeout(() => {
      if (finish()) resolve({ stuck: `its top-level code did not finish within ${seconds} s` });
    }, seconds * 1000);
    timer.unref();
    p.then(
      (value) => {
        if (finish()) resolve({ value });
      },
      (e: unknown) => {
        if (finish()) reject(e);
      },
    );
  });

const loadTimeout = (): number => {
  const v = Number(process.env['STARSPEC_SPEC_TIMEOUT']);
  return Number.isFinite(v) && v > 0 ? v : SPEC_LOAD_TIMEOUT;
};

/** This package's `exports` as file URLs: the sources when running from them, else dist/. */
const ownEntries = (() => {
  let cached: ReadonlyMap<string, string> | null = null;
  return (): ReadonlyMap<string, string> => {
    if (cached) return cached;
    const pkgPath = createRequire(import.meta.url).resolve('starspec/package.json');
    const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, string | Record<string, string>> };
    const fromSources = import.meta.url.endsWith('.ts');
    const m = new Map<string, string>();
    for (const [sub, target] of Object.entries(pkg.exports)) {
      const file = typeof target === 'string' ? target : fromSources ? (target['starspec-source'] ?? target['default']) : target['default'];
      if (file !== undefined && /\.(m?js|ts)$/.test(file)) m.set(sub === '.' ? 'starspec' : `starspec${sub.slice(1)}`, pathToFileURL(join(dirname(pkgPath), file)).href);
    }
    cached = m;
    return m;
  };
})();

const SKIP = Symbol('starspec: resolve normally');

const imports: Plugin = {
  name: 'starspec',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === SKIP || isBuiltin(args.path) || /^[a-z]+:/.test(args.path)) return undefined;
      if (args.path === 'starspec' || args.path.startsWith('starspec/')) {
        const url = ownEntries().get(args.path);
        if (url !== undefined) return { path: url, external: true };
        return {
          errors: [{ text: `starspec has no entry '${args.path}' (its entries: ${[...ownEntries().keys()].join(', ')})` }],
        };
      }
      // Other packages stay bare imports, resolved by Node from the user's project; checked here
      // first, so a missing package is reported at the line that imports it.
      const r = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: SKIP });
      if (r.errors.length > 0) {
        const name = args.path.startsWith('@') ? args.path.split('/').slice(0, 2).join('/') : args.path.split('/')[0]!;
        return { errors: [{ text: `cannot find '${args.path}'`, detail: `npm install ${name} in this project` }] };
      }
      return { path: args.path, external: true };
    });
  },
};

/** Byte column (0-based) to a character column (1-based). */
const charColumn = (lineText: string, byteColumn: number): number => Buffer.from(lineText).subarray(0, byteColumn).toString().length + 1;

/** The spec as the user named it; another file relative to the working directory (or absolute). */
const shownPath = (file: string, path: string, display: string): string => {
  const abs = resolve(process.cwd(), file);
  if (abs === path) return display;
  const rel = relative(process.cwd(), abs);
  return rel.startsWith('..') ? abs : rel;
};

const fromMessage = (m: Message, path: string, display: string): SpecError => {
  const where = m.location ? `${shownPath(m.location.file, path, display)}:${m.location.line}:${charColumn(m.location.lineText, m.location.column)}` : display;
  const hint = typeof m.detail === 'string' ? m.detail : '';
  return specError(where, `cannot load the spec module: ${m.text}`, hint);
};

/**
 * Import the spec module at `path` (absolute). `display` names it in errors (the path as the user
 * gave it). Returns the module namespace.
 */
export const importSpecModule = async (path: string, display: string): Promise<Result<Record<string, unknown>>> => {
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => e);
  if (st instanceof Error)
    return E.left([specError(display, `cannot load the spec module: ${st.code === 'ENOENT' ? 'no such file' : st.code === 'EACCES' ? 'permission denied' : st.message}`)]);
  if (!st.isFile())
    return E.left([specError(display, `cannot load the spec module: it is ${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO (named pipe)' : 'not a regular file'}`, 'name a .ts or .js spec file')]);
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.mjs`);
  let code: string;
  try {
    // Loaded here, not at start-up: built-in names and JSON specs never need it.
    const { build } = await import('esbuild');
    const out = await build({
      entryPoints: [path],
      absWorkingDir: process.cwd(),
      outfile: tmp,
      write: false,
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      sourcemap: 'inline',
      logLevel: 'silent',
      plugins: [imports],
    });
    code = out.outputFiles[0]!.text;
  } catch (e) {
    const errors = (e as { errors?: readonly Message[] }).errors;
    if (Array.isArray(errors) && errors.length > 0) return E.left(errors.slice(0, 10).map((m) => fromMessage(m, path, display)));
    return E.left([specError(display, `cannot load the spec module: ${(e as Error).message.split('\n')[0]}`)]);
  }
  try {
    await writeFile(tmp, code);
  } catch (e) {
    return E.left([
      specError(display, `cannot load the spec module: cannot write a temporary module next to it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'starspec writes the compiled spec next to the file for one moment; make the folder writable'),
    ]);
  }
  // Stack traces of a spec that throws while loading point at its own lines (inline source map).
  process.setSourceMapsEnabled(true);
  try {
    const r = await withoutExit(() => settles(import(pathToFileURL(tmp).href) as Promise<Record<string, unknown>>, loadTimeout()));
    if ('stuck' in r) return E.left([specError(display, `cannot load the spec module: ${r.stuck}`, 'a spec module computes its spec and exports it; remove the await, or make it settle')]);
    return E.right(r.value);
  } catch (e) {
    return E.left([specError(display, `cannot load the spec module: ${describeLoadError(e, tmp, path, display)}`)]);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
};

/** The first line of a load-time error, with the temporary file's name replaced by the spec's. */
const describeLoadError = (e: unknown, tmp: string, path: string, display: string): string => {
  const err = e as Error;
  const msg = String(err?.message ?? e).split('\n')[0]!.split(tmp).join(path).split(pathToFileURL(tmp).href).join(path);
  const frame = String(err?.stack ?? '')
    .split('\n')
    .find((l) => l.includes(path) && /:\d+:\d+\)?$/.test(l));
  const at = frame?.match(/([^\s(]+):(\d+:\d+)\)?$/);
  return at ? `${msg} (at ${shownPath(at[1]!.replace(/^file:\/\//, ''), path, display)}:${at[2]})` : msg;
};
