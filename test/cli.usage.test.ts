/**
 * The command line's own usage: commander's errors as one `starspec: error:` line each, required
 * options marked in --help, `summary --settings`, `schema` and `init`.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { starganV1, starganV2 } from '../specs/index.ts';
import { failedWithOneLine, starspec, succeeded } from './helpers/cli.ts';

const tmp = mkdtempSync(join(tmpdir(), 'starspec-usage-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("commander's errors are one line with the command and a pointer to its --help", async () => {
  const cases: ReadonlyArray<readonly [readonly string[], RegExp]> = [
    [['sumary', 'stargan-v1'], /^starspec: error: starspec: unknown command 'sumary' \(Did you mean summary\?; run `starspec --help` for usage\)$/],
    [['summary'], /^starspec: error: summary: missing required argument 'spec' \(run `starspec summary --help` for usage\)$/],
    [['summary', 'stargan-v1', '--jsn'], /^starspec: error: summary: unknown option '--jsn' \(Did you mean --json\?; run `starspec summary --help`/],
    [['diagram', 'stargan-v1', '--net', 'generator'], /^starspec: error: diagram: required option '--out <file\.svg>' not specified/],
    [['export', 'stargan-v1', '--net'], /^starspec: error: export: option '--net <name>' argument missing/],
    [['run', 'stargan-v1', '--net', 'generator', '--weights', 'w', '--inputs', 'i', '--out', 'o', '--backend', 'gpu'], /^starspec: error: run: option '--backend <name>' argument 'gpu' is invalid\. Allowed choices are auto, tensorflow, wasm, cpu/],
    [['check', 'stargan-v1', 'stargan-v2'], /^starspec: error: check: too many arguments for 'check'/],
  ];
  for (const [args, re] of cases) {
    const r = await starspec(...args);
    assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}`);
    failedWithOneLine(r, re);
  }
  // --help and --version still print and succeed.
  const help = await starspec('--help');
  succeeded(help, '--help');
  assert.match(help.out, /Usage: starspec/);
  assert.match((await starspec('--version')).out, /^\d+\.\d+\.\d+/);
});

test('--help marks required options', async () => {
  const r = await starspec('export', '--help');
  succeeded(r, 'export --help');
  assert.match(r.out, /--net <name> +\(required\) a network/);
  assert.match(r.out, /--out <model\.onnx> +\(required\) where to write/);
  assert.match(r.out, /--weights <[^>]+> +weights \(default/, 'optional options are not marked');
  assert.match((await starspec('train', '--help')).out, /--data <dir\|synthetic> +\(required\)/);
});

test('summary --settings lists every setting with its type, default and doc', async () => {
  const r = await starspec('summary', 'stargan-v1', '--settings');
  succeeded(r, 'summary --settings');
  assert.match(r.out, /^stargan-v1: StarGAN/);
  assert.match(r.out, /\ngDownNum +int 0\.\.8 +2 +generator stride-2 down-sampling/);
  assert.match(r.out, /\ncDim +int 1\.\.1024 +5 \(derived\) +label size/);
  assert.match(r.out, /\ndataset +CelebA\|RaFD\|Both +CelebA /);
  const rows = r.out.trim().split('\n').slice(3);
  assert.equal(rows.length, starganV1.settings.length);

  const j = await starspec('summary', 'examples/stargan-v2-small.ts', '--settings', '--json', '--set', 'numDomains=4');
  succeeded(j, 'summary --settings --json');
  const info = JSON.parse(j.out) as { spec: string; settings: Array<{ key: string; default: unknown; doc: string; type: { kind: string } }> };
  assert.equal(info.settings.length, starganV2.settings.length);
  const byKey = new Map(info.settings.map((s) => [s.key, s]));
  assert.equal(byKey.get('baseDim')!.doc.length > 0, true);
  assert.equal(byKey.get('numDomains')!.default, 4, '--set values stand in for defaults');
  assert.equal(byKey.get('imageSize')!.default, 32, "withDefaults' defaults");
  failedWithOneLine(await starspec('summary', 'stargan-v1', '--settings', '--set', 'nope=1'), /unknown setting 'nope'/);
});

test('schema prints the JSON Schema; of a spec module it knows that spec by name', async () => {
  const r = await starspec('schema');
  succeeded(r, 'schema');
  assert.deepEqual(JSON.parse(r.out), JSON.parse(readFileSync('schema/spec.schema.json', 'utf8')));
  const mine = await starspec('schema', 'examples/tiny-translator.ts', '--out', join(tmp, 's.json'));
  succeeded(mine, 'schema <spec> --out');
  const s = JSON.parse(readFileSync(join(tmp, 's.json'), 'utf8')) as { definitions: Record<string, { properties?: Record<string, unknown> }> };
  assert.deepEqual(Object.keys(s.definitions['settings-tiny-translator']!.properties!), ['imageSize', 'width', 'blocks', 'labels', 'lr', 'iterations']);
  failedWithOneLine(await starspec('schema', 'nope.ts'), /nope\.ts: cannot load the spec module: no such file/);
});

test('init scaffolds a project whose specs check, and never overwrites without --force', async () => {
  const dir = join(tmp, 'proj');
  const r = await starspec('init', dir);
  succeeded(r, 'init');
  for (const f of ['package.json', 'tsconfig.json', 'my-variant.ts', 'my-variant.json', 'README.md', '.gitignore']) assert.ok(existsSync(join(dir, f)), f);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; type: string; scripts: Record<string, string>; dependencies: Record<string, string> };
  assert.equal(pkg.name, 'proj');
  assert.equal(pkg.type, 'module');
  assert.match(pkg.dependencies['starspec']!, /^\^\d+\.\d+\.\d+$/);
  for (const s of ['check', 'summary', 'settings', 'train', 'evaluate', 'export', 'typecheck']) assert.ok(pkg.scripts[s], `script ${s}`);
  assert.match(readFileSync(join(dir, 'my-variant.json'), 'utf8'), /"\$schema": "\.\/node_modules\/starspec\/schema\/spec\.schema\.json"/);
  assert.match(readFileSync(join(dir, 'my-variant.ts'), 'utf8'), /from 'starspec\/dsl'/);
  // The scaffold's specs load here too (starspec/* bound to this starspec).
  for (const f of ['my-variant.ts', 'my-variant.json']) assert.match((await starspec('check', join(dir, f))).out, /^OK /, f);
  const again = await starspec('init', dir);
  failedWithOneLine(again, /already has package\.json, .*--force/);
  succeeded(await starspec('init', dir, '--force'), 'init --force');
});
