/**
 * starspec as a user installs it. `npm pack` (which builds dist/ through prepack), then the tarball
 * installed without network into two fresh projects, from the npm cache that `npm ci` filled:
 *
 * - an ES module project made by `starspec init` (its TypeScript and JSON-with-$schema specs), and
 *   a CommonJS project (no "type") with a TypeScript spec importing 'starspec/dsl' and a local
 *   module: check, summary, train --steps 2 and export from each;
 * - examples/api.mjs copied out of the installed package runs with plain node; examples/api.ts
 *   type-checks under NodeNext and under Bundler, strict, noUncheckedIndexedAccess, without
 *   skipLibCheck;
 * - the tarball holds dist/ (JavaScript and .d.ts), schema/, examples/, bin/, README and LICENSE,
 *   and no tests, bench, CI or tools; onnxruntime-node is not installed.
 *
 * npm 11 resolves a lockfile-less install from full registry documents, which the cache of a
 * lockfile install does not hold; so each project gets a package-lock.json pinning starspec's
 * dependencies to the versions and integrities of this repository's lock (what a registry install
 * would pick today), and `npm ci --offline` installs it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Ajv } from 'ajv';
import { repoRoot } from './helpers/specs.ts';

const tmp = mkdtempSync(join(tmpdir(), 'starspec-package-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Ran {
  readonly code: number;
  readonly out: string;
  readonly err: string;
  readonly seconds: number;
}

const run = (cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Ran> =>
  new Promise((resolve, reject) => {
    const t0 = Date.now();
    const p = spawn(cmd, args, { cwd, env: { ...process.env, NODE_OPTIONS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out, err, seconds: (Date.now() - t0) / 1000 }));
  });
const ok = async (what: string, r: Promise<Ran>): Promise<Ran> => {
  const x = await r;
  assert.equal(x.code, 0, `${what}: exit ${x.code}\n${x.err.slice(-3000)}\n${x.out.slice(-1000)}`);
  return x;
};

const npm = (args: readonly string[], cwd: string): Promise<Ran> => run('npm', args, cwd);

interface LockEntry {
  readonly version?: string;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly [k: string]: unknown;
}

/** A consumer's package-lock.json: the tarball, and the closure of `deps` from this repository's lock. */
const consumerLock = (name: string, tarball: string, extra: Readonly<Record<string, string>>): { pkg: Record<string, unknown>; lock: Record<string, unknown> } => {
  const repoLock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const all = repoLock.packages;
  const root = all['']!;
  const out: Record<string, LockEntry> = {};
  const locate = (dep: string, from: string): string | undefined => {
    for (let at = from; ; at = at.slice(0, Math.max(0, at.lastIndexOf('/node_modules/')))) {
      const k = at === '' ? `node_modules/${dep}` : `${at}/node_modules/${dep}`;
      if (all[k]) return k;
      if (at === '') return undefined;
    }
  };
  const walk = (dep: string, from: string, optional: boolean): void => {
    const k = locate(dep, from);
    if (k === undefined) {
      assert.ok(optional, `${dep} (needed by ${from || 'starspec'}) is not in package-lock.json`);
      return;
    }
    if (out[k]) return;
    const { dev: _d, devOptional: _o, ...entry } = all[k]!;
    out[k] = entry;
    for (const d of Object.keys(entry.dependencies ?? {})) walk(d, k, false);
    for (const d of Object.keys(entry.optionalDependencies ?? {})) walk(d, k, true);
  };
  for (const d of Object.keys(root.dependencies ?? {})) walk(d, '', false);
  for (const d of Object.keys(extra)) walk(d, '', false);
  const pinned = Object.fromEntries(Object.keys(extra).map((d) => [d, all[`node_modules/${d}`]!.version!]));
  const dependencies = { starspec: `file:${tarball}`, ...pinned };
  const integrity = `sha512-${createHash('sha512').update(readFileSync(join(tmp, tarball))).digest('base64')}`;
  const starspec = {
    version: root.version,
    resolved: `file:${tarball}`,
    integrity,
    license: root['license'],
    dependencies: root.dependencies,
    peerDependencies: root['peerDependencies'],
    peerDependenciesMeta: root['peerDependenciesMeta'],
    bin: root['bin'],
    engines: root['engines'],
  };
  return {
    pkg: { dependencies },
    lock: { name, version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name, version: '1.0.0', dependencies }, 'node_modules/starspec': starspec, ...out } },
  };
};

const du = (p: string): number => {
  const st = lstatSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  return readdirSync(p).reduce((a, f) => a + du(join(p, f)), 0);
};

const MiB = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

describe('the packed package, installed offline', { concurrency: false }, () => {
  let tarball = '';
  const esm = join(tmp, 'esm-project');
  const cjs = join(tmp, 'cjs-project');
  const bin = (dir: string): string => join(dir, 'node_modules', '.bin', 'starspec');

  before(async () => {
    const packed = await ok('npm pack', npm(['pack', '--json', '--pack-destination', tmp], repoRoot));
    const info = (JSON.parse(packed.out.slice(packed.out.indexOf('['))) as Array<{ filename: string; size: number; unpackedSize: number; files: Array<{ path: string }> }>)[0]!;
    tarball = info.filename;
    const files = info.files.map((f) => f.path);
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/dsl/index.d.ts', 'dist/cli/main.js', 'bin/starspec.mjs', 'schema/spec.schema.json', 'examples/api.mjs', 'examples/api.ts', 'README.md', 'LICENSE', 'package.json'])
      assert.ok(files.includes(f), `the tarball lacks ${f}`);
    const stray = files.filter((f) => /^(test|bench|tools|\.ci|api|cli|dsl|io|specs|interpreters)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith('examples/')));
    assert.deepEqual(stray, [], 'sources, tests, bench, CI and tools stay out of the tarball');
    process.stderr.write(`# tarball ${tarball}: ${MiB(info.size)} packed, ${MiB(info.unpackedSize)} unpacked, ${files.length} files\n`);

    // The ES module project: `starspec init` (the repository's CLI), then the tarball installed.
    await ok('starspec init', run(process.execPath, [join(repoRoot, 'bin/starspec.mjs'), 'init', esm], tmp));
    mkdirSync(cjs, { recursive: true });
    const install = async (dir: string, name: string, extra: Readonly<Record<string, string>>): Promise<void> => {
      copyFileSync(join(tmp, tarball), join(dir, tarball));
      const { pkg, lock } = consumerLock(name, tarball, extra);
      const own = existsSync(join(dir, 'package.json')) ? (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<string, unknown>) : { name, version: '1.0.0', private: true };
      delete own['devDependencies'];
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...own, name, version: '1.0.0', ...pkg }, null, 2));
      writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock, null, 2));
      const r = await ok(`npm ci --offline (${name})`, npm(['ci', '--offline', '--no-audit', '--no-fund'], dir));
      process.stderr.write(`# ${name}: npm ci --offline in ${r.seconds.toFixed(1)} s\n`);
    };
    await Promise.all([install(esm, 'esm-project', { typescript: '', '@types/node': '' }), install(cjs, 'cjs-project', {})]);
    const size = du(join(cjs, 'node_modules')); // apparent size, as du --apparent-size
    process.stderr.write(`# install size (starspec and its dependencies, no onnxruntime-node): ${MiB(size)}\n`);
  });

  test('onnxruntime-node is not installed; the CLI starts', async () => {
    assert.equal(existsSync(join(cjs, 'node_modules', 'onnxruntime-node')), false);
    const help = await ok('npx starspec --help', run('npx', ['--offline', 'starspec', '--help'], cjs));
    assert.match(help.out, /Usage: starspec/);
    assert.doesNotMatch(help.err, /npm warn/);
    process.stderr.write(`# first npx starspec --help after the install: ${help.seconds.toFixed(2)} s\n`);
    const v = await ok('starspec --version', run(bin(cjs), ['--version'], cjs));
    assert.equal(v.out.trim(), (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version);
  });

  const SMALL = ['--set', 'batchSize=2', '--set', 'gConvDim=4', '--set', 'dConvDim=4'];
  const workflow = async (dir: string, specFile: string): Promise<void> => {
    const c = await ok(`check ${specFile}`, run(bin(dir), ['check', specFile], dir));
    assert.match(c.out, /^OK /);
    const s = await ok(`summary ${specFile}`, run(bin(dir), ['summary', specFile, '--net', 'generator'], dir));
    assert.match(s.out, /total +[\d,]+/);
    const out = join(dir, 'runs', specFile);
    const t = await ok(`train ${specFile}`, run(bin(dir), ['train', specFile, '--data', 'synthetic', '--out', out, '--steps', '2', '--backend', 'cpu', '--quiet', ...SMALL], dir));
    assert.match(t.err, /to step 2/);
    const onnx = join(out, 'generator.onnx');
    await ok(`export ${specFile}`, run(bin(dir), ['export', specFile, '--net', 'generator', '--weights', join(out, 'checkpoint.safetensors'), '--out', onnx, ...SMALL], dir));
    assert.ok(statSync(onnx).size > 1000);
  };

  test('a CommonJS project: a TypeScript spec importing starspec/dsl and a local module; check, summary, train, export', async () => {
    writeFileSync(join(cjs, 'sizes.ts'), 'export const SIZE = 16;\n');
    writeFileSync(
      join(cjs, 'variant.ts'),
      "import { withDefaults } from 'starspec/dsl';\nimport { starganV1 } from 'starspec/specs';\nimport { SIZE } from './sizes';\n\nexport default withDefaults(starganV1, 'cjs-variant', { imageSize: SIZE, gRepeatNum: 1, dRepeatNum: 3, nCritic: 1 });\n",
    );
    assert.equal((JSON.parse(readFileSync(join(cjs, 'package.json'), 'utf8')) as { type?: string }).type, undefined);
    await workflow(cjs, 'variant.ts');
    // A spec error from the installed CLI is one line naming the file and the import.
    writeFileSync(join(cjs, 'broken.ts'), "import { nothing } from './missing';\nexport default nothing;\n");
    const r = await run(bin(cjs), ['check', 'broken.ts'], cjs);
    assert.notEqual(r.code, 0);
    assert.match(r.err.trim(), /^starspec: error: broken\.ts:1:25: cannot load the spec module: Could not resolve "\.\/missing"$/);
  });

  test('an ES module project from starspec init: its TypeScript spec and its JSON spec with $schema', async () => {
    await workflow(esm, 'my-variant.ts');
    const json = join(esm, 'my-variant.json');
    const doc = JSON.parse(readFileSync(json, 'utf8')) as { $schema: string };
    const schema = JSON.parse(readFileSync(join(esm, doc.$schema), 'utf8')) as object;
    const ajv = new Ajv({ strict: false });
    assert.ok(ajv.validate(schema, doc), ajv.errorsText());
    await workflow(esm, 'my-variant.json');
  });

  test('examples/api.mjs runs with node, copied out of the package', async () => {
    copyFileSync(join(esm, 'node_modules/starspec/examples/api.mjs'), join(esm, 'api.mjs'));
    const r = await ok('node api.mjs', run(process.execPath, ['api.mjs'], esm));
    assert.match(r.out, /^step 1: d\/loss_real -?\d/m);
    assert.match(r.out, /^step 3: .*g\/loss_rec/m);
    assert.match(r.out, /wrote generator\.onnx/);
    assert.ok(statSync(join(esm, 'generator.onnx')).size > 1000);
  });

  test('examples/api.ts type-checks under NodeNext and Bundler, strict, noUncheckedIndexedAccess, no skipLibCheck', async () => {
    copyFileSync(join(esm, 'node_modules/starspec/examples/api.ts'), join(esm, 'api.ts'));
    const tsc = join(esm, 'node_modules/typescript/bin/tsc');
    const base = { target: 'ES2022', strict: true, noUncheckedIndexedAccess: true, noEmit: true, skipLibCheck: false };
    const configs = {
      'tsconfig.nodenext.json': { ...base, module: 'NodeNext', moduleResolution: 'NodeNext' },
      'tsconfig.bundler.json': { ...base, module: 'ESNext', moduleResolution: 'Bundler' },
    };
    // The type check has teeth: wrong.ts (a wrong option type) must be the only file with errors.
    writeFileSync(join(esm, 'wrong.ts'), "import { train } from 'starspec';\nexport const r = train(undefined as never, { data: 'synthetic', steps: 'three' });\n");
    for (const [file, compilerOptions] of Object.entries(configs)) {
      writeFileSync(join(esm, file), JSON.stringify({ compilerOptions, files: ['api.ts', 'my-variant.ts', 'wrong.ts'] }));
      const r = await run(process.execPath, [tsc, '-p', file, '--pretty', 'false'], esm);
      const errors = r.out.split('\n').filter((l) => / error TS\d+/.test(l));
      assert.ok(errors.length > 0 && errors.every((l) => l.startsWith('wrong.ts(2,')), `${file}:\n${r.out.slice(0, 3000)}`);
      assert.match(errors[0]!, /error TS2322/);
    }
  });
});
