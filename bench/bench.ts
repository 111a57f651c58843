/**
 * `npm run bench`: StarGAN v1 and v2 at the official widths, forward and full training
 * iterations on the tfjs backends (wasm with 1 and 2 threads, the stock cpu backend where it
 * finishes), the exported generator in onnxruntime-node, side by side with PyTorch eager
 * (bench/torch_bench.py: the same architectures and one official iteration, written from the
 * architecture description) when a python3 with torch is present. Ratios are ours / PyTorch,
 * measured in the same run, each PyTorch measurement right after the ones it is compared with.
 *
 *   npm run bench                        the default plan (~15-25 min on 2 cores)
 *   npm run bench -- --quick             32 px only, fewer repetitions (a few minutes)
 *   npm run bench -- --json              last line: one JSON object per measurement
 *   npm run bench -- --memory            1,000 training steps of tiny configs: no growth allowed
 *   npm run bench -- --profile --specs v1 --sizes 64 --kinds train_step --backends wasm:2
 *                                        where the time goes: per-kernel self time, GFLOP/s
 *
 * Each tfjs / onnxruntime configuration runs in its own worker process (bench/worker.ts), so
 * peak RSS is per configuration and wasm starts with the requested thread count.
 */
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runMemoryCheck } from './memory.ts';
import {
  KINDS,
  SPEC_NAMES,
  engineLabel,
  plan,
  type Case,
  type Engine,
  type Kind,
  type PlanOptions,
  type Skip,
  type SpecName,
} from './plan.ts';
import { findTorch, startTorch, type TorchResult, type TorchServer } from './torch.ts';
import type { Measured, WorkerPartial, Timing, WorkerJob, WorkerResult } from './worker.ts';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** One line of the `--json` output, exactly the documented fields. */
export interface Measurement {
  readonly spec: SpecName;
  readonly kind: Kind;
  readonly size: number;
  readonly batch: number;
  readonly backend: string;
  readonly threads: number;
  readonly seconds: number;
  readonly torch_seconds: number | null;
  readonly ratio: number | null;
}

interface Row extends Omit<Measurement, 'seconds' | 'ratio'> {
  /** null: the measurement failed (see `error`). */
  readonly seconds: number | null;
  readonly ratio: number | null;
  readonly error: string | null;
  readonly gflop: number;
  readonly reps: number;
  readonly peakRssMb: number | null;
  readonly wasmHeapMb: number | null;
  /** Live tfjs tensors gained per timed call (0 when nothing leaks). */
  readonly tensorsPerCall: number | null;
  readonly liveTensors: number | null;
  readonly torchRssMb: number | null;
}

// ---------------------------------------------------------------------------------------------
// Arguments

interface Args {
  readonly json: boolean;
  readonly quick: boolean;
  readonly memory: boolean;
  readonly memorySteps: number;
  /** One iteration of the official sizes at their batch (official.ts). */
  readonly official: boolean;
  readonly officialThreads: number;
  readonly profile: boolean;
  readonly torch: boolean;
  readonly plan: PlanOptions;
  readonly timing: Timing;
  /** Seconds before a worker (one spec, size and engine) is stopped. */
  readonly workerTimeout: number;
}

const USAGE = `usage: npm run bench -- [options]
  --json               print, as the last line, a JSON array with one object per measurement
  --quick              32 px only, fewer repetitions (a few minutes)
  --sizes 32,64,128    image sizes
  --specs v1,v2        stargan-v1, stargan-v2 (or v1, v2)
  --kinds k,...        forward, train_step, onnx_forward
  --backends b,...     wasm:1, wasm:2, cpu (wasm = wasm:1,wasm:2); default wasm:1,wasm:2,cpu
  --repeats n          timed repetitions after the warm-up (default 3; 2 with --quick)
  --warmup n           warm-up calls (default 1)
  --budget s           seconds per measurement: fewer repetitions when they would take longer
  --batch n            one batch size for everything (default: 8, halved until a call fits the cap)
  --cap-forward g      model GFLOP cap per forward call (default 100)
  --cap-train g        model GFLOP cap per training iteration (default v1 350, v2 800; 100 with --quick)
  --cpu-max-size px    largest size the stock cpu backend runs (default 32)
  --cpu-cap g          largest model GFLOP per call on the stock cpu backend (default 40)
  --max-call s         stop a tfjs call (one forward or one iteration) after this long (default 200; 120 with --quick)
  --worker-timeout s   stop a worker (one spec, size and engine) after this long (default 1200; 600 with --quick)
  --no-torch           skip PyTorch (ratios are null)
  --memory             1,000 training steps of tiny v1 and v2 configs; exit 1 on tensor/RSS growth
  --steps n            steps for --memory (default 1000)
  --official           one iteration each of v1 128 px batch 16 and v2 256 px batch 8 on wasm as
                       \`starspec train\` runs them (micro-batch chosen), heap peak against the memory
                       model, and PyTorch's same iteration (tens of minutes; --specs picks, --threads n)
  --profile            per-kernel profile of each case (tfjs) and torch.profiler, no repetitions`;

const fail = (msg: string): never => {
  process.stderr.write(`bench: ${msg}\n${USAGE}\n`);
  process.exit(2);
};

const positiveInts = (v: string, flag: string): number[] =>
  v.split(',').map((x) => {
    const n = Number(x.trim());
    if (!Number.isInteger(n) || n <= 0) fail(`${flag}: '${x}' is not a positive integer`);
    return n;
  });

const specName = (s: string): SpecName => {
  const t = s.trim().toLowerCase();
  const full = t.startsWith('stargan-') ? t : `stargan-${t}`;
  if (!(SPEC_NAMES as readonly string[]).includes(full)) fail(`--specs: unknown spec '${s}' (stargan-v1, stargan-v2)`);
  return full as SpecName;
};

const engines = (v: string): Engine[] =>
  v.split(',').flatMap((b): Engine[] => {
    const [name, t] = b.trim().split(':') as [string, string | undefined];
    if (name === 'wasm') return t === undefined ? [{ backend: 'wasm', threads: 1 }, { backend: 'wasm', threads: 2 }] : [{ backend: 'wasm', threads: positiveInts(t, '--backends')[0]! }];
    if (name === 'cpu') return [{ backend: 'cpu', threads: 1 }];
    return fail(`--backends: unknown backend '${b}' (wasm, wasm:N, cpu; onnxruntime runs for onnx_forward)`);
  });

export const parseArgs = (argv: readonly string[]): Args => {
  const flags = new Map<string, string>();
  const bools = new Set<string>();
  const valued = new Set(['--sizes', '--specs', '--kinds', '--backends', '--repeats', '--warmup', '--budget', '--batch', '--cap-forward', '--cap-train', '--cpu-max-size', '--steps', '--worker-timeout', '--max-call', '--cpu-cap', '--threads']);
  const known = new Set(['--json', '--quick', '--memory', '--profile', '--official', '--no-torch', '--help', '-h']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const [k, inline] = eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    if (valued.has(k)) {
      const v = inline ?? argv[++i];
      if (v === undefined) fail(`${k} needs a value`);
      flags.set(k, v!);
    } else if (known.has(k)) bools.add(k);
    else fail(`unknown option '${a}'`);
  }
  if (bools.has('--help') || bools.has('-h')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const quick = bools.has('--quick');
  const num = (k: string, d: number): number => {
    const v = flags.get(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) fail(`${k}: '${v}' is not a non-negative number`);
    return n;
  };
  const kinds = flags.has('--kinds')
    ? flags.get('--kinds')!.split(',').map((k) => {
        const t = k.trim() as Kind;
        if (!KINDS.includes(t)) fail(`--kinds: unknown kind '${k}' (${KINDS.join(', ')})`);
        return t;
      })
    : [...KINDS];
  const repeats = num('--repeats', quick ? 2 : 3);
  const warmup = num('--warmup', 1);
  const budget = num('--budget', quick ? 10 : 40);
  const timing: Timing = { warmup, repeats, budget, maxCall: num('--max-call', quick ? 120 : 200) };
  return {
    json: bools.has('--json'),
    quick,
    memory: bools.has('--memory'),
    memorySteps: num('--steps', 1000),
    official: bools.has('--official'),
    officialThreads: num('--threads', 2),
    profile: bools.has('--profile'),
    torch: !bools.has('--no-torch'),
    plan: {
      specs: flags.has('--specs') ? flags.get('--specs')!.split(',').map(specName) : [...SPEC_NAMES],
      sizes: flags.has('--sizes') ? positiveInts(flags.get('--sizes')!, '--sizes') : quick ? [32] : [32, 64, 128],
      kinds,
      engines: engines(flags.get('--backends') ?? 'wasm:1,wasm:2,cpu'),
      onnxThreads: cpus().length,
      batch: flags.has('--batch') ? positiveInts(flags.get('--batch')!, '--batch')[0]! : null,
      capGflop: Object.fromEntries(
        SPEC_NAMES.map((spec) => {
          const forward = num('--cap-forward', quick ? 60 : 100);
          // v2's cheapest official-width iteration (32 px, batch 1) is ~725 model GFLOP.
          const train = num('--cap-train', quick ? 100 : spec === 'stargan-v1' ? 350 : 800);
          return [spec, { forward, onnx_forward: forward, train_step: train }];
        }),
      ) as PlanOptions['capGflop'],
      cpuMaxSize: num('--cpu-max-size', 32),
      cpuCapGflop: num('--cpu-cap', 40),
    },
    timing,
    workerTimeout: num('--worker-timeout', quick ? 600 : 1200),
  };
};

// ---------------------------------------------------------------------------------------------
// Running

const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};

/**
 * Run one worker; kill it after `timeoutSeconds` (a configuration that thrashes near the
 * WebAssembly heap's 4 GB limit can run for an hour). Measurements it finished before are kept
 * (the worker prints each one as it is taken); the rest are reported as failed.
 */
const runWorker = (job: WorkerJob, timeoutSeconds: number): Promise<WorkerResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let timedOut: string | null = null;
    const stop = (why: string): void => {
      if (timedOut !== null) return;
      timedOut = why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => stop(`timed out after ${timeoutSeconds} s (--worker-timeout) and was stopped`), timeoutSeconds * 1000);
    // Watchdog: a call stuck inside one kernel never reaches the worker's own deadline check.
    const maxCall = job.timing.maxCall ?? 0;
    let callStart: number | null = null;
    const watchdog = setInterval(() => {
      if (maxCall > 0 && callStart !== null && Date.now() - callStart > (maxCall + 30) * 1000)
        stop(`one call took over ${maxCall + 30} s (--max-call ${maxCall}) and the worker was stopped`);
    }, 2000);
    child.stdout.on('data', (d: Buffer) => {
      const text = d.toString();
      out += text;
      for (const l of text.split('\n')) {
        if (l === 'CALL') callStart = Date.now();
        else if (l === 'DONE') callStart = null;
      }
    });
    child.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    child.on('error', (e) => {
      clearTimeout(timer);
      clearInterval(watchdog);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearInterval(watchdog);
      const lines = out.split('\n');
      const line = lines.find((l) => l.startsWith('RESULT '));
      if (line) {
        resolve(JSON.parse(line.slice('RESULT '.length)) as WorkerResult);
        return;
      }
      // Stopped or crashed: keep what it measured, and say what happened to the rest.
      const partials = lines.filter((l) => l.startsWith('MEASURED ')).map((l) => JSON.parse(l.slice('MEASURED '.length)) as WorkerPartial);
      const why = timedOut ?? `the worker exited (${signal ?? `code ${code}`})`;
      if (partials.length === 0 && timedOut === null) {
        reject(new Error(`${why} without a result`));
        return;
      }
      const last = partials[partials.length - 1];
      const measured: Measured[] = job.measures.map(
        (m, i) => partials[i]?.measured ?? { kind: m.kind, batch: m.batch, seconds: null, times: [], warmupSeconds: [], tensors: null, error: why },
      );
      resolve({ job, threads: last?.threads ?? job.engine.threads, measured, peakRssMb: last?.peakRssMb ?? 0, wasmHeapMb: last?.wasmHeapMb ?? null });
    });
  });

const key = (spec: string, kind: string, size: number, batch: number): string => `${spec}|${kind}|${size}|${batch}`;

interface Outcome {
  readonly rows: Row[];
  readonly failures: string[];
  readonly profiles: string[];
}

const fmtS = (s: number | null): string => (s === null ? '-' : s >= 100 ? s.toFixed(0) : s >= 10 ? s.toFixed(1) : s >= 1 ? s.toFixed(2) : s.toFixed(3));

const profileText = (title: string, totalMs: number, kernels: ReadonlyArray<{ name: string; calls: number; selfMs: number }>, convs?: ReadonlyArray<{ name: string; calls: number; ms: number; gflop: number }>): string => {
  const lines = [`${title}: ${(totalMs / 1000).toFixed(2)} s of kernel self time`];
  lines.push(`  ${'op'.padEnd(44)} ${'calls'.padStart(6)} ${'self s'.padStart(8)} ${'share'.padStart(6)}`);
  for (const k of kernels.slice(0, 15))
    lines.push(`  ${k.name.slice(0, 44).padEnd(44)} ${String(k.calls).padStart(6)} ${(k.selfMs / 1000).toFixed(2).padStart(8)} ${((100 * k.selfMs) / Math.max(totalMs, 1e-9)).toFixed(1).padStart(5)}%`);
  if (convs && convs.length > 0) {
    lines.push(`  convolution work (outermost conv-like kernels, inclusive time):`);
    for (const c of convs)
      lines.push(`  ${c.name.padEnd(44)} ${String(c.calls).padStart(6)} ${(c.ms / 1000).toFixed(2).padStart(8)} s  ${c.gflop.toFixed(1).padStart(7)} GFLOP  ${(c.gflop / Math.max(c.ms / 1000, 1e-9)).toFixed(1).padStart(6)} GFLOP/s`);
  }
  return lines.join('\n');
};

const runPlan = async (cases: readonly Case[], args: Args, torch: TorchServer | null): Promise<Outcome> => {
  const rows: Row[] = [];
  const failures: string[] = [];
  const profiles: string[] = [];
  const torchCache = new Map<string, TorchResult>();
  // Group: (spec, size) in plan order; within, one worker per engine.
  const groups = new Map<string, Case[]>();
  for (const c of cases) {
    const g = `${c.spec}|${c.size}`;
    groups.set(g, [...(groups.get(g) ?? []), c]);
  }
  for (const group of groups.values()) {
    const { spec, size } = group[0]!;
    const byEngine = new Map<string, Case[]>();
    for (const c of group) byEngine.set(engineLabel(c.engine), [...(byEngine.get(engineLabel(c.engine)) ?? []), c]);
    const results: Array<{ c: Case; m: Measured; w: WorkerResult }> = [];
    for (const cs of byEngine.values()) {
      const engine = cs[0]!.engine;
      const job: WorkerJob = {
        spec,
        size,
        engine,
        measures: cs.map((c) => ({ kind: c.kind, batch: c.batch })),
        timing: args.timing,
        profile: args.profile,
      };
      let w: WorkerResult;
      try {
        w = await runWorker(job, args.workerTimeout);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        for (const c of cs) failures.push(`${spec} ${c.kind} ${size} px batch ${c.batch} on ${engineLabel(engine)}: ${msg}`);
        continue;
      }
      w.measured.forEach((m, i) => results.push({ c: cs[i]!, m, w }));
    }
    // PyTorch right after, for every (kind, batch) measured here.
    if (torch) {
      const need = new Map<string, { kind: 'forward' | 'train_step'; batch: number }>();
      for (const { c } of results) {
        const kind = c.kind === 'train_step' ? 'train_step' : 'forward';
        need.set(key(spec, kind, size, c.batch), { kind, batch: c.batch });
      }
      for (const [k, n] of need) {
        if (torchCache.has(k)) continue;
        const r = await torch.run({ spec, kind: n.kind, size, batch: n.batch, ...args.timing, profile: args.profile });
        torchCache.set(k, r);
        if (r.error) failures.push(`PyTorch ${spec} ${n.kind} ${size} px batch ${n.batch}: ${r.error}`);
        if (r.profile) profiles.push(profileText(`PyTorch ${spec} ${n.kind} ${size} px batch ${n.batch} (torch.autograd.profiler, ${torch.info.threads} threads)`, r.profile.totalMs, r.profile.kernels));
      }
    }
    for (const { c, m, w } of results) {
      if (m.seconds === null) failures.push(`${spec} ${c.kind} ${size} px batch ${c.batch} on ${engineLabel(c.engine)}: ${m.error ?? 'failed'}`);
      if (m.profile && m.seconds !== null)
        profiles.push(profileText(`tfjs ${spec} ${c.kind} ${size} px batch ${c.batch} on ${c.engine.backend}:${w.threads} (${m.seconds.toFixed(2)} s wall)`, m.profile.totalMs, m.profile.kernels, m.profile.convs));
      const t = torchCache.get(key(spec, c.kind === 'train_step' ? 'train_step' : 'forward', size, c.batch));
      const ts = t?.seconds ?? null;
      const reps = m.times.length;
      rows.push({
        spec,
        kind: c.kind,
        size,
        batch: c.batch,
        backend: c.engine.backend,
        threads: w.threads,
        seconds: m.seconds,
        torch_seconds: ts,
        ratio: ts === null || m.seconds === null ? null : m.seconds / ts,
        error: m.seconds === null ? (m.error ?? 'failed') : null,
        gflop: c.gflop,
        reps,
        peakRssMb: w.peakRssMb,
        wasmHeapMb: w.wasmHeapMb,
        tensorsPerCall: m.tensors && reps > 0 ? (m.tensors.after - m.tensors.afterWarmup) / reps : null,
        liveTensors: m.tensors ? m.tensors.after : null,
        torchRssMb: t?.rss_mb ?? null,
      });
    }
  }
  return { rows, failures, profiles };
};

// ---------------------------------------------------------------------------------------------
// Report

const table = (header: readonly string[], body: ReadonlyArray<readonly string[]>, right: ReadonlySet<number>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: readonly string[]): string => r.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
};

export const renderRows = (rows: readonly Row[]): string => {
  const header = ['spec', 'kind', 'px', 'batch', 'engine', 'ours s', 'torch s', 'ratio', 'GFLOP', 'ours GF/s', 'torch GF/s', 'reps', 'peak RSS MB', 'tensors (+/call)'];
  const body = rows.map((r) => [
    r.spec,
    r.kind,
    String(r.size),
    String(r.batch),
    `${r.backend}:${r.threads}`,
    r.seconds === null ? 'failed' : fmtS(r.seconds),
    fmtS(r.torch_seconds),
    r.ratio === null ? 'null' : r.ratio.toFixed(2),
    `${r.kind === 'train_step' ? '~' : ''}${r.gflop.toFixed(0)}`,
    r.seconds === null ? '-' : (r.gflop / r.seconds).toFixed(1),
    r.torch_seconds === null ? '-' : (r.gflop / r.torch_seconds).toFixed(1),
    String(r.reps),
    `${r.peakRssMb === null ? '-' : r.peakRssMb.toFixed(0)}${r.wasmHeapMb === null ? '' : ` (heap ${r.wasmHeapMb.toFixed(0)})`}`,
    r.liveTensors === null ? '-' : `${r.liveTensors} (${r.tensorsPerCall === 0 ? '+0' : (r.tensorsPerCall ?? 0).toFixed(1)})`,
  ]);
  return table(header, body, new Set([2, 3, 5, 6, 7, 8, 9, 10, 11, 12]));
};

const targets = (rows: readonly Row[]): string[] => {
  const out: string[] = [];
  const best = (f: (r: Row) => boolean): Row | undefined =>
    rows.filter((r) => f(r) && r.ratio !== null).sort((a, b) => a.ratio! - b.ratio!)[0];
  const say = (what: string, limit: number, r: Row | undefined, f: (r: Row) => boolean = () => false): void => {
    const failed = rows.filter((x) => f(x) && x.seconds === null).map((x) => `${x.backend}:${x.threads}`);
    if (!r && !rows.some(f)) out.push(`${what}: not in this run`);
    else if (!r) out.push(`${what}: no ratio (${failed.length > 0 ? `failed on ${failed.join(', ')}, see notes` : 'no PyTorch result'})`);
    else out.push(`${what}: best ${r.ratio!.toFixed(2)}x (${r.backend}:${r.threads}, ${r.size} px, batch ${r.batch}) against <= ${limit}: ${r.ratio! <= limit ? 'met' : 'missed'}`);
  };
  const v1t = (r: Row): boolean => r.spec === 'stargan-v1' && r.kind === 'train_step' && r.size === 64 && r.batch === 8;
  say('v1 training iteration, 64 px, batch 8', 1.0, best(v1t), v1t);
  for (const size of [...new Set(rows.filter((r) => r.spec === 'stargan-v2' && r.kind === 'train_step').map((r) => r.size))]) {
    const v2t = (r: Row): boolean => r.spec === 'stargan-v2' && r.kind === 'train_step' && r.size === size;
    say(`v2 training iteration, ${size} px`, 1.5, best(v2t), v2t);
  }
  for (const r of rows.filter((x) => x.kind === 'onnx_forward'))
    say(`onnxruntime-node generator, ${r.spec} ${r.size} px`, 0.7, r);
  return out;
};

const main = async (): Promise<void> => {
  const args = parseArgs(process.argv.slice(2));
  if (args.official) {
    const { runOfficial, officialTable } = await import('./official.ts');
    const rows = await runOfficial({ specs: args.plan.specs, threads: args.officialThreads, torch: args.torch, json: args.json });
    process.stdout.write(`${officialTable(rows)}\n`);
    if (args.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
    process.exit(rows.every((r) => r.seconds !== null) ? 0 : 1);
  }
  if (args.memory) {
    const ok = await runMemoryCheck({ steps: args.memorySteps, json: args.json, engines: args.plan.engines.filter((e) => e.backend !== 'cpu').slice(0, 1) });
    process.exit(ok ? 0 : 1);
  }
  const started = Date.now();
  const { cases, skips } = plan(args.plan);
  log(`bench: ${cases.length} measurements planned, ${skips.length} skipped; ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown cpu'})`);
  let torch: TorchServer | null = null;
  const torchNote: string[] = [];
  if (args.torch) {
    const found = findTorch();
    if (found) {
      torch = await startTorch(found);
      log(`PyTorch ${torch.info.version} at ${torch.info.python}, ${torch.info.threads} threads`);
    } else torchNote.push('PyTorch: no python3 with torch found ($STARSPEC_PYTHON, python3, /usr/bin/python3): ratios are null');
  } else torchNote.push('PyTorch: skipped (--no-torch): ratios are null');
  let outcome: Outcome;
  try {
    outcome = await runPlan(cases, args, torch);
  } finally {
    await torch?.close();
  }
  const { rows, failures, profiles } = outcome;
  const minutes = (Date.now() - started) / 60000;
  const out: string[] = [];
  out.push('');
  out.push(
    `StarGAN benchmark: ours (tfjs / onnxruntime-node) against PyTorch ${torch ? `${torch.info.version} eager, ${torch.info.threads} threads` : '(absent)'}; ` +
      `median seconds per call after ${args.timing.warmup} warm-up; ratio = ours / PyTorch (lower is better)`,
  );
  out.push(renderRows(rows));
  out.push('');
  out.push('forward: the generator alone (v1 G(x, c), v2 G(x, s)), no gradients; onnx_forward: the exported generator in onnxruntime-node against the same PyTorch forward.');
  out.push('train_step: one full iteration; v1: one D update (WGAN-GP) and one G update (n_critic 1); v2: the official loop (D latent, D reference, G latent, G reference, EMA).');
  out.push('GFLOP: model FLOPs (2 x MACs of the analysis interpreter; ~ = estimated for a training iteration, see bench/plan.ts); GF/s = GFLOP / median seconds.');
  out.push('peak RSS: the worker process, shared by the forward and train_step rows of one engine (heap: the WebAssembly heap it grew to; wasm32 caps it at 4096 MB); tensors: live tfjs tensors after the last call (+ per timed call: growth, 0 when nothing leaks).');
  out.push('failed: see notes; failed measurements are not in the --json array.');
  const notes = [
    ...torchNote,
    ...skips.map((s: Skip) => `skipped ${s.spec} ${s.kind} ${s.size} px on ${s.engine}: ${s.reason}`),
    ...failures.map((f) => `failed ${f}`),
  ];
  if (notes.length > 0) out.push('', 'notes:', ...notes.map((n) => `  ${n}`));
  const t = targets(rows);
  if (t.length > 0) out.push('', 'targets (reported, not asserted):', ...t.map((x) => `  ${x}`));
  if (profiles.length > 0) out.push('', 'profiles:', ...profiles);
  out.push('', `finished in ${minutes.toFixed(1)} min`);
  process.stdout.write(`${out.join('\n')}\n`);
  if (args.json) {
    const ms: Measurement[] = rows.flatMap((r) => (r.seconds === null ? [] : [{
      spec: r.spec,
      kind: r.kind,
      size: r.size,
      batch: r.batch,
      backend: r.backend,
      threads: r.threads,
      seconds: r.seconds,
      torch_seconds: r.torch_seconds,
      ratio: r.ratio,
    }]));
    process.stdout.write(`${JSON.stringify(ms)}\n`);
  }
};

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
