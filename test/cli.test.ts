/** The command line, end to end, as outside scripts call it. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers/specs.ts';

const starspec = (...args: string[]): { code: number; out: string; err: string } => {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin/starspec.mjs'), ...args], { cwd: repoRoot, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
};
const tmp = mkdtempSync(join(tmpdir(), 'starspec-cli-'));

test('summary --json reports the official AFHQ parameter counts', () => {
  const r = starspec('summary', 'stargan-v2', '--set', 'imageSize=256', '--set', 'numDomains=3', '--set', 'wHpf=0', '--json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { spec: string; networks: Record<string, { params: number; macs: number; layers: unknown[] }> };
  assert.equal(j.spec, 'stargan-v2');
  assert.equal(j.networks['generator']!.params, 33_892_995);
  assert.equal(j.networks['mapping_network']!.params, 3_259_072);
  assert.equal(j.networks['style_encoder']!.params, 20_949_760);
  assert.equal(j.networks['discriminator']!.params, 20_852_803);
  assert.ok(j.networks['generator']!.macs > 0 && j.networks['generator']!.layers.length > 50);
});

test('summary prints a table with shapes and totals', () => {
  const r = starspec('summary', 'stargan-v1', '--net', 'discriminator');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /main\.10 +conv2d 4x4 s2 p1, 1024->2048 +\(N, 2048, 2, 2\) +33,556,480/);
  assert.match(r.out, /total +44,762,048/);
});

test('settings are validated for the network asked for', () => {
  assert.equal(starspec('summary', 'stargan-v1', '--net', 'generator', '--set', 'imageSize=32').code, 0);
  const r = starspec('summary', 'stargan-v1', '--set', 'imageSize=32');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /discriminator\/main\.10: kernel 4 is larger than the padded input/);
});

test('unknown and ill-typed --set keys are errors naming the key', () => {
  const r = starspec('check', 'stargan-v2', '--set', 'imagesize=64', '--set', 'numDomains=two');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--set imagesize: unknown setting 'imagesize'.*did you mean imageSize/);
  assert.match(r.err, /--set numDomains: "two" is not valid/);
  assert.doesNotMatch(r.err, /at .*\.ts:\d+/, 'no stack trace');
});

test('check on a broken spec file prints the offending node path and exits non-zero', () => {
  // A resolved IR with one conv's input channels wrong.
  const ir = spawnSync(process.execPath, ['--import', 'tsx', '-e', `
    import('./dsl/settings.ts').then(async ({ buildSpec }) => {
      const { builtinSpecs } = await import('./specs/index.ts');
      const r = buildSpec(builtinSpecs.get('stargan-v1'), {});
      process.stdout.write(JSON.stringify(r.right));
    });`], { cwd: repoRoot, encoding: 'utf8' });
  const spec = JSON.parse(ir.stdout) as { networks: Array<{ nodes: Array<Record<string, unknown>> }> };
  const conv = spec.networks[0]!.nodes.find((n) => n['path'] === 'main.3')!;
  conv['inChannels'] = 65;
  const file = join(tmp, 'broken.json');
  writeFileSync(file, JSON.stringify(spec));
  const r = starspec('check', file);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /generator\/main\.3: expects 65 input channels \(inChannels\) but its input has 64/);

  // The same spec, intact, checks OK and round-trips through JSON.
  conv['inChannels'] = 64;
  writeFileSync(file, JSON.stringify(spec));
  assert.equal(starspec('check', file).code, 0);
  assert.notEqual(starspec('check', file, '--set', 'imageSize=64').code, 0, '--set on a resolved IR is an error');
});

test('a malformed JSON spec gets an io-ts error naming the path', () => {
  const file = join(tmp, 'malformed.json');
  writeFileSync(file, JSON.stringify({ format: 'starspec/ir@1', name: 'x', settings: {}, networks: [{ name: 'g', nodes: [{ op: 'conv2d', path: 'c', input: 0 }], outputs: [], ignoredBuffers: [] }] }));
  const r = starspec('check', file);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /networks\.0\.nodes\.0\.inChannels: expected number/);
  writeFileSync(file, '{ not json');
  assert.match(starspec('check', file).err, /is not valid JSON/);
});

test('.ts and .json spec files work by path with check, summary and diagram', () => {
  for (const f of ['examples/stargan-v2-small.ts', 'examples/tiny-translator.ts', 'examples/stargan-v1-small.json']) {
    const r = starspec('check', f);
    assert.equal(r.code, 0, `${f}: ${r.err}`);
    assert.match(r.out, /^OK /);
    assert.equal(starspec('summary', f, '--json').code, 0);
  }
  const ext = join(tmp, 'ext.json');
  writeFileSync(ext, JSON.stringify({ extends: join(repoRoot, 'examples/stargan-v2-small.ts'), set: { numDomains: 4 } }));
  const r = starspec('summary', ext, '--net', 'mapping_network', '--json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { networks: Record<string, { layers: Array<{ path: string }> }> };
  assert.ok(j.networks['mapping_network']!.layers.some((l) => l.path === 'unshared.3.6'));
});

test('unknown spec names and missing files are one clear line', () => {
  const r = starspec('summary', 'stargan-v3');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /^starspec: error: stargan-v3: is neither a built-in spec/);
  assert.equal(r.err.trim().split('\n').length, 1);
  assert.match(starspec('check', 'nope.ts').err, /cannot load the spec module/);
});

test('train rejects bad numeric options with one line each, before touching --out', () => {
  const out = join(tmp, 'never');
  for (const [flag, value, pattern] of [
    ['--threads', '0', /--threads: 0 is not a whole number from 1 to 8/],
    ['--threads', 'two', /--threads: two is not a whole number from 1 to 8/],
    ['--steps', '-3', /--steps: -3 is not a positive integer/],
    ['--time-limit', '0', /--time-limit: 0 is not a positive number of minutes/],
  ] as const) {
    const r = starspec('train', 'stargan-v1', '--data', 'synthetic', '--out', out, flag, value);
    assert.notEqual(r.code, 0, `${flag} ${value}`);
    assert.match(r.err, pattern);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
  }
  assert.equal(existsSync(out), false);
});
