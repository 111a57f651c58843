/**
 * `node --import tsx bench/torch_export.ts`: the code `starspec export-torch` writes, timed.
 *
 * For each case (spec, image size, batch; official widths) it writes the export to a temporary
 * folder and runs bench/torch_export_bench.py: one iteration of the exported Trainer (every phase,
 * Adam, EMA) against bench/torch_bench.py's hand-written reference iteration, alternating them.
 * With --processes K it also runs the export on K gloo processes (NCCL with --device cuda), each
 * on batch / K, started as torchrun starts its workers.
 *
 *   node --import tsx bench/torch_export.ts [--cases v1:64:8,v2:32:1] [--repeats 3] [--processes 2]
 *        [--device cpu|cuda] [--keep DIR]
 *
 * Cases: v1 as the bench's train_step (n_critic 1, D depth min(6, log2 size)); v2 with w_hpf 0 and
 * two domains. PyTorch is $STARSPEC_PYTHON or /usr/bin/python3; it runs from a temporary folder.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import { buildSpec } from '../dsl/settings.ts';
import { builtinSpecs } from '../specs/index.ts';
import { emitTorch, runtimeFiles } from '../interpreters/torch/index.ts';

const PYTHON = process.env['STARSPEC_PYTHON'] ?? '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./torch_export_bench.py', import.meta.url));

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
};

const run = (args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> =>
  new Promise((resolve, reject) => {
    const p = spawn(PYTHON, args, { cwd: tmpdir(), env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      process.stderr.write(d);
    });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 29500));
    });
  });

const lastJson = (out: string): Record<string, unknown> => JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;

const main = async (): Promise<void> => {
  const cases = arg('cases', 'v1:64:8,v2:32:1').split(',').map((c) => {
    const [v, size, batch] = c.split(':');
    return { spec: v === 'v1' ? 'stargan-v1' : 'stargan-v2', size: Number(size), batch: Number(batch) };
  });
  const repeats = arg('repeats', '3');
  const processes = Number(arg('processes', '0'));
  const device = arg('device', 'cpu');
  const root = arg('keep', '') || mkdtempSync(join(tmpdir(), 'starspec-torch-bench-'));
  const rows: Array<Record<string, unknown>> = [];
  for (const c of cases) {
    const set: Record<string, unknown> =
      c.spec === 'stargan-v1'
        ? { imageSize: c.size, batchSize: c.batch, nCritic: 1, dRepeatNum: Math.min(6, Math.floor(Math.log2(c.size))) }
        : { imageSize: c.size, batchSize: c.batch, wHpf: 0, numDomains: 2 };
    const spec = buildSpec(builtinSpecs.get(c.spec)!, set);
    if (E.isLeft(spec)) throw new Error(JSON.stringify(spec.left));
    const files = emitTorch(spec.right);
    if (E.isLeft(files)) throw new Error(JSON.stringify(files.left));
    const dir = join(root, `${c.spec}-${c.size}-${c.batch}`);
    mkdirSync(dir, { recursive: true });
    for (const [f, text] of [...files.right, ...(await runtimeFiles())]) writeFileSync(join(dir, f), text);
    const common = [SCRIPT, '--export', dir, '--spec', c.spec, '--size', String(c.size), '--batch', String(c.batch), '--repeats', repeats, '--device', device];
    const one = await run(common);
    if (one.code !== 0) throw new Error(`${c.spec}: exit ${one.code}`);
    rows.push(lastJson(one.out));
    console.log(JSON.stringify(rows[rows.length - 1]));
    if (processes > 1) {
      const port = String(await freePort());
      const rs = await Promise.all(
        Array.from({ length: processes }, (_, r) =>
          run([...common, '--no-reference'], { MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, WORLD_SIZE: String(processes), RANK: String(r), LOCAL_RANK: String(r), LOCAL_WORLD_SIZE: String(processes) }),
        ),
      );
      if (rs.some((r) => r.code !== 0)) throw new Error(`${c.spec}: a process failed`);
      rows.push(lastJson(rs[0]!.out));
      console.log(JSON.stringify(rows[rows.length - 1]));
    }
  }
  console.log('\n| case | processes | export | reference (torch_bench.py) | ratio |\n| --- | --- | --- | --- | --- |');
  for (const r of rows)
    console.log(
      `| ${r['spec']} ${r['size']} px batch ${r['batch']} | ${r['processes']} x ${r['threads']} thread(s), ${r['device']} | ${(r['seconds'] as number).toFixed(2)} s | ${r['reference_seconds'] === undefined ? '-' : `${(r['reference_seconds'] as number).toFixed(2)} s`} | ${r['ratio'] === undefined ? '-' : (r['ratio'] as number).toFixed(2)} |`,
    );
};

await main();
