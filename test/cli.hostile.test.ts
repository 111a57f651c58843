/**
 * Issue 14's spec and edge cases, as the team had them only as descriptions: each one, built here,
 * gives exit status 1 and one `starspec: error:` line (no stack trace, no internal error), within a
 * bounded time.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeSpec } from '../dsl/codec.ts';
import { failedWithOneLine, type Ran } from './helpers/cli.ts';
import { nested } from './helpers/spec-arbitraries.ts';
import { repoRoot, spec } from './helpers/specs.ts';

const tmp = mkdtempSync(join(tmpdir(), 'starspec-hostile-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The CLI with a time limit (a case that hangs fails instead of hanging the tests). */
const run = (args: readonly string[], env: Record<string, string> = {}, seconds = 60): Promise<Ran & { ms: number }> =>
  new Promise((resolve, reject) => {
    const t0 = Date.now();
    const p = spawn(process.execPath, [join(repoRoot, 'bin/starspec.mjs'), ...args], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), seconds * 1000);
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out, err, ms: Date.now() - t0 });
    });
  });

/** Exit 1 and one error line matching `re`. */
const oneLine = (r: Ran, re: RegExp): string => {
  const line = failedWithOneLine(r, re);
  assert.equal(r.code, 1, `exit ${r.code}: ${r.err}`);
  return line;
};

const file = (name: string, text: string): string => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};

const SMALL_V1 = { imageSize: 16, gConvDim: 4, gRepeatNum: 1, dConvDim: 4, dRepeatNum: 3, batchSize: 2 };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;
const ir = (edit: (d: Doc) => void, set: Record<string, unknown> = SMALL_V1, name = 'stargan-v1'): Doc => {
  const d = JSON.parse(encodeSpec(spec(name, set))) as Doc;
  edit(d);
  return d;
};
const irFile = (name: string, edit: (d: Doc) => void): string => file(name, JSON.stringify(ir(edit)));

describe('specs that crashed or hung', () => {
  test('2,000 nested detach (40 KB of JSON) is refused at its depth', async () => {
    const p = irFile('detach.json', (d) => {
      let x: Doc = d.training.phases[0].loss[0].term.x.inputs.x;
      for (let i = 0; i < 2000; i++) x = { e: 'detach', x };
      d.training.phases[0].loss[0].term.x.inputs.x = x;
    });
    assert.ok(readFileSync(p).length > 40_000);
    oneLine(await run(['check', p]), /detach\.json\.training\.phases\.0\.loss\.0\.term\.x\.inputs(\.x)+: nests deeper than 100 levels/);
  });

  test('10,000-deep values: in a resolved IR, and as a setting of an extends file', async () => {
    const deep = nested(10_000);
    let text = JSON.stringify(ir(() => undefined)).replace('"imageSize":16', '"imageSize":__DEEP__');
    // JSON.stringify cannot write 10,000 levels; the array is written as text.
    text = text.replace('__DEEP__', `${'['.repeat(10_000)}0${']'.repeat(10_000)}`);
    oneLine(await run(['check', file('deep-ir.json', text)]), /deep-ir\.json\.settings\.imageSize(\.0)+: nests deeper than 100 levels/);
    void deep;
    const ext = file('deep-set.json', `{"extends":"stargan-v1","set":{"imageSize":${'['.repeat(10_000)}0${']'.repeat(10_000)}}}`);
    oneLine(await run(['check', ext]), /deep-set\.json\.set\.imageSize: \[\[\[.*is not an integer/);
    oneLine(await run(['check', 'stargan-v1', '--set', `selectedAttrs=${'x,'.repeat(50_000)}`]), /--set selectedAttrs: .* unknown entries/);
  });

  test('settings past their maximum: --set gRepeatNum=1000000, numDomains=2^53, gConvDim=1e300', async () => {
    for (const [s, set, re] of [
      ['stargan-v1', 'gRepeatNum=1000000', /--set gRepeatNum: "1000000" is not valid: above the maximum 64 \(gRepeatNum is an integer from 0 to 64\)/],
      ['stargan-v2', 'numDomains=9007199254740992', /--set numDomains: "9007199254740992" is not valid: above the maximum 1024/],
      ['stargan-v1', 'gConvDim=1e300', /--set gConvDim: "1e300" is not valid: above the maximum 4096/],
    ] as const) {
      const r = await run(['check', s, '--set', set]);
      oneLine(r, re);
      assert.ok(r.ms < 20_000, `${set}: ${r.ms} ms`);
    }
  });

  test('a FIFO as the spec path is refused at once (JSON and .ts)', { skip: process.platform === 'win32' }, async () => {
    for (const name of ['pipe.json', 'pipe.ts']) {
      const p = join(tmp, name);
      const made = spawnSync('mkfifo', [p]);
      if (made.status !== 0) return;
      const r = await run(['check', p], {}, 30);
      oneLine(r, /is a FIFO \(named pipe\)/);
    }
  });

  test('an error line echoing a 10 MB string stays short', async () => {
    const key = 'k'.repeat(10_000_000);
    const r = await run(['check', file('long-key.json', JSON.stringify({ extends: 'stargan-v1', set: { [key]: 1 } }))]);
    const line = oneLine(r, /unknown setting 'kkk.* \.\.\.\(\d+ characters\)\.\.\. k+'/);
    assert.ok(line.length < 7_000, `${line.length} characters`);
  });
});

describe('check refuses what train would break on', () => {
  test('a parameter path shared by two different modules', async () => {
    const p = irFile('dup.json', (d) => {
      const nodes = d.networks[1].nodes;
      const i = nodes.findIndex((n: Doc) => n.path === 'main.2');
      nodes.push({ ...nodes[i], outChannels: 2 * nodes[i].outChannels });
    });
    oneLine(await run(['check', p]), /discriminator\/main\.2: parameter keys main\.2\.weight, main\.2\.bias are also node \d+'s .* share one tensor/);
  });

  test('an unknown key (dilation on a conv2d)', async () => {
    const p = irFile('dilation.json', (d) => {
      d.networks[0].nodes.find((n: Doc) => n.op === 'conv2d').dilation = 2;
    });
    oneLine(await run(['check', p]), /networks\.0\.nodes\.\d+\.dilation: unknown key \(conv2d takes/);
  });

  test('sizes past 2^53 (gConvDim=1e300 in an IR) and learning rates that are negative or huge', async () => {
    oneLine(
      await run(['check', irFile('1e300.json', (d) => (d.networks[0].nodes.find((n: Doc) => n.op === 'conv2d').outChannels = 1e300))]),
      /outChannels: expected a positive integer below 2\^53, got 1e\+300/,
    );
    oneLine(await run(['check', irFile('neg-lr.json', (d) => (d.training.optimizers[0].lr = { kind: 'constant', value: -0.1 }))]), /training\.optimizers\.0\(generator\)\.lr: value -0\.1 is outside \[0, 1\]/);
    oneLine(await run(['check', irFile('huge-lr.json', (d) => (d.training.optimizers[1].lr = { kind: 'constant', value: 1e30 }))]), /training\.optimizers\.1\(discriminator\)\.lr: value 1e\+30 is outside \[0, 1\]/);
    oneLine(await run(['check', file('inf.json', JSON.stringify(ir(() => undefined)).replace('"eps":1e-8', '"eps":1e400'))]), /training\.optimizers\.0\.eps: Infinity is not a finite number/);
  });

  test('edits to the settings train reads (imageSize): check and train say so in one line', async () => {
    const huge = irFile('size-huge.json', (d) => (d.settings.imageSize = 1_000_000));
    oneLine(await run(['check', huge]), /settings\.imageSize: must be an integer from 1 to 4096; got 1000000/);
    const other = irFile('size-other.json', (d) => (d.settings.imageSize = 64));
    oneLine(await run(['check', other]), /settings\.imageSize: is 64, but the objective feeds CelebA field x to networks as 16x16 images/);
    oneLine(await run(['train', other, '--data', 'synthetic', '--out', join(tmp, 'never'), '--steps', '1', '--backend', 'cpu', '--quiet']), /settings\.imageSize: is 64/);
    assert.equal(existsSync(join(tmp, 'never')), false);
  });
});

describe('failures at the edges', () => {
  const V1 = Object.entries(SMALL_V1).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  const train = (out: string, ...more: string[]) => run(['train', 'stargan-v1', '--data', 'synthetic', '--out', out, '--steps', '1', '--backend', 'cpu', '--quiet', ...V1, ...more]);

  test('--out naming a file, a path through a file, or a directory that cannot be written', async () => {
    const f = file('a-file', 'x');
    oneLine(await train(f), /a-file: is a file, not a directory/);
    oneLine(await train(join(f, 'run')), /a-file\/run: cannot use it as the run directory: a part of the path is a file, not a directory/);
    // Root may write anywhere a mode allows; sysfs refuses new directories even to root.
    if (existsSync('/sys/kernel')) oneLine(await train('/sys/kernel/starspec-run'), /\/sys\/kernel\/starspec-run: cannot create the run directory: (permission denied|EPERM|EACCES)/);
  });

  test('a CelebA attribute list shorter than the official split', async () => {
    const attrs = file('list_attr_celeba.txt', `3\nBlack_Hair Blond_Hair Brown_Hair Male Young\na.jpg 1 -1 -1 1 1\nb.jpg -1 1 -1 1 1\nc.jpg -1 -1 1 -1 -1\n`);
    mkdirSync(join(tmp, 'celeba'), { recursive: true });
    const out = join(tmp, 'celeba-run');
    const r = await run(['train', 'stargan-v1', '--data', join(tmp, 'celeba'), '--attrs', attrs, '--out', out, '--steps', '1', '--backend', 'cpu', '--quiet', ...V1]);
    oneLine(r, /list_attr_celeba\.txt: lists 3 images; the official split holds out the first 1999/);
    assert.equal(existsSync(out), false, 'a failed start leaves nothing');
  });

  test("a spec whose build() throws; one that calls process.exit(0); one whose top-level await never settles", async () => {
    const dir = join(tmp, 'mods');
    mkdirSync(dir, { recursive: true });
    const mod = (name: string, body: string): string => {
      const p = join(dir, name);
      writeFileSync(p, `import { withDefaults } from 'starspec/dsl';\nimport { starganV1 } from 'starspec/specs';\n${body}\n`);
      return p;
    };
    const throws = mod('throws.ts', "export default { ...withDefaults(starganV1, 'throws', {}), build: () => { throw new Error('no way'); } };");
    oneLine(await run(['check', throws]), /throws\.ts: build\(\) of spec throws threw: no way/);
    const exits = mod('exits.ts', "process.exit(0);\nexport default withDefaults(starganV1, 'exits', {});");
    oneLine(await run(['check', exits]), /exits\.ts: cannot load the spec module: called process\.exit\(0\)/);
    const exitsInBuild = mod('exits-build.ts', "export default { ...withDefaults(starganV1, 'eb', {}), build: () => process.exit(0) };");
    oneLine(await run(['check', exitsInBuild]), /exits-build\.ts: build\(\) of spec eb threw: called process\.exit\(0\)/);
    const stuck = mod('stuck.ts', "await new Promise(() => {});\nexport default withDefaults(starganV1, 'stuck', {});");
    const r = await run(['check', stuck], {}, 30);
    oneLine(r, /stuck\.ts: cannot load the spec module: its top-level code awaits a promise that never settles/);
    assert.ok(r.ms < 20_000, `${r.ms} ms`);
    const slow = mod('slow.ts', "await new Promise((r) => setTimeout(r, 600_000));\nexport default withDefaults(starganV1, 'slow', {});");
    const s = await run(['check', slow], { STARSPEC_SPEC_TIMEOUT: '1' }, 30);
    oneLine(s, /slow\.ts: cannot load the spec module: its top-level code did not finish within 1 s/);
    assert.ok(s.ms < 20_000, `${s.ms} ms: the process exits although the spec's timer is still pending`);
  });

  test('--no-code-specs (and STARSPEC_NO_CODE_SPECS) refuses spec modules, also through extends; JSON stays allowed', async () => {
    const ts = join(repoRoot, 'examples/stargan-v2-small.ts');
    oneLine(await run(['check', ts, '--no-code-specs']), /stargan-v2-small\.ts: is a spec module, a program that runs with your rights; code specs are turned off/);
    const ext = file('ext-ts.json', JSON.stringify({ extends: ts, set: { numDomains: 3 } }));
    oneLine(await run(['summary', ext, '--no-code-specs']), /stargan-v2-small\.ts: is a spec module, .*\(named by .*ext-ts\.json\)/);
    oneLine(await run(['check', ts], { STARSPEC_NO_CODE_SPECS: '1' }), /code specs are turned off/);
    const ok = await run(['check', join(repoRoot, 'examples/stargan-v1-small.json'), '--no-code-specs']);
    assert.equal(ok.code, 0, ok.err);
    const okIr = await run(['check', irFile('plain.json', () => undefined), '--no-code-specs']);
    assert.equal(okIr.code, 0, okIr.err);
  });

  test('a run that fails before its first checkpoint leaves nothing that blocks a rerun', async () => {
    const out = join(tmp, 'rerun');
    oneLine(await run(['train', 'stargan-v1', '--data', join(tmp, 'no-such-folder'), '--attrs', join(tmp, 'no-such.txt'), '--out', out, '--steps', '1', '--backend', 'cpu', '--quiet', ...V1]), /no-such\.txt: cannot be read/);
    assert.equal(existsSync(out), false);
    // A directory a killed run left behind without a checkpoint is replaced (with a warning).
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'run.json'), '{}\n');
    writeFileSync(join(out, 'log.jsonl'), '{"step":1');
    const r = await train(out);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /starspec: warning: .*rerun: holds a run that never wrote a checkpoint \(nothing to resume\): it is replaced/);
    assert.ok(readdirSync(out).includes('checkpoint.safetensors'));
  });
});
