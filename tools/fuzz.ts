/**
 * The readers' fuzzer (issue 14): large runs of the arbitraries the property tests use, each case
 * in a child process watched for time and memory, with a summary.
 *
 *   node --import tsx tools/fuzz.ts                                    # every target, default counts
 *   node --import tsx tools/fuzz.ts --target checkpoint-official --count 2000 --seed 7
 *   node --import tsx tools/fuzz.ts --torch-oracle                     # also ask PyTorch about changed reads
 *   node --import tsx tools/fuzz.ts --list
 *
 * Outcomes per case:
 *   refused     an error value with a message (the reader's own words)
 *   same        read, exactly what the unmutated file holds
 *   changed     read, well-formed, but different from the original: a change the format cannot
 *               detect (legacy checkpoints and safetensors carry no checksum) or a valid new file;
 *               with --torch-oracle, PyTorch reads each such legacy/zip file too and must agree
 *   corruption  a zip checkpoint read as different tensors (its CRC-32 should have refused it), or
 *               PyTorch disagreeing with a changed read
 *   internal    an exception, an "unexpected failure" error, an overlong error, or a malformed result
 *   crash       the child process died during the case
 *   accepted    (spec targets) a document that decodes and checks, every network summarised; for
 *               spec-train, then trained one step on the synthetic data
 *   hang        the case ran past --case-timeout-ms
 *   memory      the case took the child's peak resident memory past --memory-limit-mb, alone in a
 *               fresh child (a case that does so in a long-running child is rerun alone first)
 *
 * Exit status 1 when any case is corruption, internal, crash, hang or memory.
 *
 *   node --import tsx tools/fuzz.ts --target spec-document --count 10000   # issue 14's spec acceptance
 *
 * Adding a target: an entry in TARGETS with a default count and `run(index, seed)` returning a
 * Verdict (test/helpers/arbitraries.ts); cases must be a pure function of (seed, index) so a
 * reported case can be rerun alone with --from INDEX --count 1.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { train } from '../api/train.ts';
import { formatError } from '../dsl/errors.ts';
import { parameterCount } from '../dsl/params.ts';
import { checkImage, loadImage } from '../io/images.ts';
import { readSafetensorsContents } from '../io/safetensors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { type TorchCheckpoint, readTorchCheckpoint } from '../io/torch.ts';
import {
  type GeneratedCheckpoint,
  type Verdict,
  arbCheckpoint,
  arbImageSpec,
  arbMutation,
  arbRepeatedPickle,
  arbSafetensors,
  expectedOf,
  fraction,
  imageBytes,
  judgeCheckpoint,
  judgeImage,
  judgeSafetensors,
  mutate,
} from '../test/helpers/arbitraries.ts';
import { MAX_LINE, arbSpecDocument, judgeSpecDocument, type SpecVerdict } from '../test/helpers/spec-arbitraries.ts';

const FIXTURES = fileURLToPath(new URL('../../shared/fixtures/torch', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Targets

/** What a case produced; `file` is kept for the PyTorch oracle when a checkpoint read changed. */
interface CaseResult {
  readonly outcome: Outcome;
  readonly message?: string;
  readonly format?: string;
  readonly file?: Uint8Array;
  readonly read?: TorchCheckpoint;
  /** Time spent in the reader itself (the case's total, generation included, when absent). */
  readonly readMs?: number;
}

/** `f()`, and how long it took. */
const timed = <A>(f: () => A): { value: A; ms: number } => {
  const t0 = performance.now();
  const value = f();
  return { value, ms: performance.now() - t0 };
};

const fromVerdict = (v: Verdict): Pick<CaseResult, 'outcome' | 'message'> => ('message' in v ? { outcome: v.outcome, message: v.message } : { outcome: v.outcome });

interface Target {
  readonly description: string;
  readonly defaultCount: number;
  readonly run: (index: number, seed: number) => CaseResult | Promise<CaseResult>;
}

/** One value of `arb` for this (seed, index): cases are reproducible one by one. */
const sampleOne = <A>(arb: fc.Arbitrary<A>, seed: number, index: number): A => fc.sample(arb, { seed: (seed * 1_000_003 + index) | 0, numRuns: 1 })[0]!;

const readChecked = (bytes: Uint8Array, name: string): { read: () => ReturnType<typeof readTorchCheckpoint>; last: () => TorchCheckpoint | undefined; ms: () => number } => {
  let last: TorchCheckpoint | undefined;
  let ms = 0;
  return {
    read: () => {
      const { value: r, ms: t } = timed(() => readTorchCheckpoint(bytes, name));
      ms = t;
      if (E.isRight(r)) last = r.right;
      return r;
    },
    last: () => last,
    ms: () => ms,
  };
};

const checkpointCase = (bytes: Uint8Array, format: 'zip' | 'legacy', expected: GeneratedCheckpoint['expected'], name: string): CaseResult => {
  const r = readChecked(bytes, name);
  const verdict = judgeCheckpoint(r.read, expected);
  const read = r.last();
  // Changed reads are kept for the PyTorch oracle.
  const keep = verdict.outcome === 'changed' && read !== undefined ? { file: bytes, read } : {};
  // A zip archive checksums every member it reads: a changed read is a missed corruption.
  if (verdict.outcome === 'changed' && format === 'zip') return { outcome: 'corruption', message: 'zip archive read as different tensors', format, readMs: r.ms(), ...keep };
  return { ...fromVerdict(verdict), format, readMs: r.ms(), ...keep };
};

interface Official {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly format: 'zip' | 'legacy' | 'safetensors';
  /** Byte ranges that hold the structure (most mutations go there). */
  readonly hot: ReadonlyArray<readonly [number, number]>;
  readonly expected?: GeneratedCheckpoint['expected'];
}

let imageDirCache: string | undefined;
const imageDir = (): string => (imageDirCache ??= mkdtempSync(join(tmpdir(), 'starspec-fuzz-images-')));
let specDirCache: string | undefined;
const specDir = (): string => (specDirCache ??= mkdtempSync(join(tmpdir(), 'starspec-fuzz-specs-')));

const fromSpecVerdict = (v: SpecVerdict): Pick<CaseResult, 'outcome' | 'message'> => (v.outcome === 'accepted' ? { outcome: 'accepted' } : { outcome: v.outcome, message: v.message });

/** Accepted specs small enough to train one step here (the target hunts crashes, not capacity). */
const trainable = (v: SpecVerdict): boolean => v.outcome === 'accepted' && v.spec.training !== null && v.spec.training.batchSize <= 8 && v.spec.networks.reduce((a, n) => a + parameterCount(n), 0) <= 2_000_000;

let officialCache: Official[] | undefined;
/** The small official fixture files (the big ones only repeat their structure). */
const officials = (): Official[] => {
  if (officialCache !== undefined) return officialCache;
  const out: Official[] = [];
  for (const f of ['v1_discriminator/model.ckpt', 'v1_discriminator/model_legacy.ckpt', 'v1_generator/model.ckpt', 'v1_generator/model_legacy.ckpt', 'v2_mapping_network/model_legacy.ckpt', 'v2_style_encoder/model_legacy.ckpt']) {
    const bytes = new Uint8Array(readFileSync(join(FIXTURES, f)));
    const r = readTorchCheckpoint(bytes, f);
    if (E.isLeft(r)) throw new Error(`fixture ${f} does not read: ${r.left[0]!.message}`);
    const format = f.endsWith('legacy.ckpt') ? 'legacy' : 'zip';
    // The pickle comes first in both formats (up to a few KB); the zip directory sits at the end.
    const hot: Array<[number, number]> = [[0, Math.min(bytes.length, 6000)]];
    if (format === 'zip') hot.push([bytes.length - 2000, bytes.length]);
    out.push({ name: f, bytes, format, hot, expected: expectedOf(r.right) });
  }
  for (const f of ['v1_discriminator/weights.safetensors', 'v2_style_encoder/weights.safetensors', 'v1_generator/io.safetensors']) {
    const bytes = new Uint8Array(readFileSync(join(FIXTURES, f)));
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    out.push({ name: f, bytes, format: 'safetensors', hot: [[0, 8 + n]] });
  }
  officialCache = out;
  return out;
};

const arbOfficialMutation = fc.record({ which: fc.noBias(fc.nat({ max: 1 << 20 })), anywhere: fraction, mutation: arbMutation });

const TARGETS: ReadonlyMap<string, Target> = new Map<string, Target>([
  [
    'checkpoint-official',
    {
      description: 'mutations of the official fixture checkpoints (zip and legacy), 70% in their structure bytes',
      defaultCount: 1500,
      run: (i, seed) => {
        const cks = officials().filter((o) => o.format !== 'safetensors');
        const m = sampleOne(arbOfficialMutation, seed, i);
        const o = cks[m.which % cks.length]!;
        const bytes = mutate(o.bytes, m.mutation, m.anywhere < 0.3 ? undefined : o.hot);
        return checkpointCase(bytes, o.format as 'zip' | 'legacy', o.expected!, o.name);
      },
    },
  ],
  [
    'checkpoint-generated',
    {
      description: 'generated checkpoints (every dtype, strided, nested, both formats): 20% as written, 80% mutated',
      defaultCount: 1500,
      run: (i, seed) => {
        const [c, ms, keep] = sampleOne(fc.tuple(arbCheckpoint, arbMutation, fraction), seed, i);
        const bytes = keep < 0.2 ? c.bytes : mutate(c.bytes, ms);
        const result = checkpointCase(bytes, c.format, c.expected, 'gen.ckpt');
        // Unmutated files must read exactly.
        if (keep < 0.2 && result.outcome !== 'same') return { outcome: 'internal', message: `valid file read as ${result.outcome}: ${result.message ?? ''}`, format: c.format };
        return result;
      },
    },
  ],
  [
    'safetensors-header',
    {
      description: 'generated safetensors headers, valid and hostile, half of them then mutated',
      defaultCount: 1500,
      run: (i, seed) => {
        const [f, mutations, keep] = sampleOne(fc.tuple(arbSafetensors, arbMutation, fc.boolean()), seed, i);
        const file = keep ? f : { bytes: mutate(f.bytes, mutations) };
        let ms = 0;
        const v = judgeSafetensors(() => {
          const t = timed(() => readSafetensorsContents(file.bytes, 'gen.safetensors'));
          ms = t.ms;
          return t.value;
        }, file);
        return { ...fromVerdict(v), format: 'safetensors', readMs: ms };
      },
    },
  ],
  [
    'pickle-repeat',
    {
      description: 'a short opcode pattern repeated up to 6 million times as the main pickle (memory amplification, quadratic time)',
      defaultCount: 300,
      run: (i, seed) => {
        const p = sampleOne(arbRepeatedPickle, seed, i);
        const c = readChecked(p.bytes, 'repeat.ckpt');
        const r = fromVerdict(judgeCheckpoint(c.read, { kind: 'flat', tensors: new Map() }));
        return { ...r, format: p.format, readMs: c.ms(), ...(r.outcome === 'internal' ? { message: `${r.message ?? ''} [${p.pattern}]` } : {}) };
      },
    },
  ],
  [
    'image-files',
    {
      description: 'generated PNG, JPEG, WebP, GIF and TIFF files, 80% mutated: checkImage and loadImage agree, never throw',
      defaultCount: 1000,
      run: async (i, seed) => {
        const [spec, ms, keep] = sampleOne(fc.tuple(arbImageSpec, arbMutation, fraction), seed, i);
        const original = await imageBytes(spec);
        const bytes = keep < 0.2 ? original : mutate(original, ms);
        const path = join(imageDir(), `case-${i}.${spec.format}`);
        writeFileSync(path, bytes);
        try {
          const t0 = performance.now();
          const v = await judgeImage(path, (p) => checkImage(p), (p) => loadImage(p, { size: 16 }), keep < 0.2);
          return { ...fromVerdict(v), format: spec.format, readMs: performance.now() - t0 };
        } finally {
          rmSync(path, { force: true });
        }
      },
    },
  ],
  [
    'spec-document',
    {
      description: 'spec documents as files (mutated resolved IRs, {extends, set} with hostile settings, cut-short text): resolved, checked, summarised',
      defaultCount: 10_000,
      run: async (i, seed) => {
        const doc = sampleOne(arbSpecDocument, seed, i);
        const path = join(specDir(), `case-${i}.json`);
        try {
          const t0 = performance.now();
          const v = await judgeSpecDocument(doc, path);
          const r = fromSpecVerdict(v);
          return { ...r, format: doc.form, readMs: performance.now() - t0, ...(r.outcome === 'internal' ? { message: `${r.message ?? ''} [${doc.note}]` } : {}) };
        } finally {
          rmSync(path, { force: true });
        }
      },
    },
  ],
  [
    'spec-train',
    {
      description: 'spec documents as spec-document; each accepted one small enough is then trained one step (synthetic data, cpu, a run directory)',
      defaultCount: 300,
      run: async (i, seed) => {
        const doc = sampleOne(arbSpecDocument, seed, i);
        const path = join(specDir(), `case-${i}.json`);
        const out = join(specDir(), `run-${i}`);
        try {
          const t0 = performance.now();
          const v = await judgeSpecDocument(doc, path);
          if (!trainable(v)) return { ...fromSpecVerdict(v), format: doc.form, readMs: performance.now() - t0 };
          const r = await train((v as Extract<SpecVerdict, { outcome: 'accepted' }>).spec, { data: 'synthetic', steps: 1, backend: 'cpu', out });
          const ms = performance.now() - t0;
          if (E.isRight(r)) return { outcome: 'accepted', format: 'trained', readMs: ms };
          const lines = r.left.map(formatError);
          const bad = lines.find((l) => l.length > MAX_LINE || /internal error|is not a function|cannot read propert/i.test(l));
          return bad === undefined
            ? { outcome: 'refused', message: lines.join(' | ').slice(0, 300), format: 'train refused', readMs: ms }
            : { outcome: 'internal', message: `train: ${bad.slice(0, 300)} [${doc.note}]`, format: doc.form, readMs: ms };
        } catch (e) {
          return { outcome: 'internal', message: `train threw: ${e instanceof Error ? e.message.slice(0, 300) : String(e)} [${doc.note}]`, format: doc.form };
        } finally {
          rmSync(path, { force: true });
          rmSync(out, { recursive: true, force: true });
        }
      },
    },
  ],
  [
    'safetensors-official',
    {
      description: 'mutations of the official fixture safetensors files, 70% in their headers',
      defaultCount: 500,
      run: (i, seed) => {
        const sts = officials().filter((o) => o.format === 'safetensors');
        const m = sampleOne(arbOfficialMutation, seed, i);
        const o = sts[m.which % sts.length]!;
        const bytes = mutate(o.bytes, m.mutation, m.anywhere < 0.3 ? undefined : o.hot);
        let ms = 0;
        const v = judgeSafetensors(() => {
          const t = timed(() => readSafetensorsContents(bytes, o.name));
          ms = t.ms;
          return t.value;
        }, { bytes });
        return { ...fromVerdict(v), format: 'safetensors', readMs: ms };
      },
    },
  ],
]);

// ---------------------------------------------------------------------------------------------
// Child: run cases, one JSON line before and after each

/** name -> [dtype, shape, sha256 of the little-endian bytes], as the PyTorch oracle computes it. */
type Digest = Record<string, [string, number[], string]>;

const digestOf = (c: TorchCheckpoint): { kind: string; tensors: Digest } => {
  const d = (m: TensorMap, prefix: string, out: Digest): void => {
    for (const [k, t] of m) out[prefix + k] = [t.dtype, [...t.shape], sha(t)];
  };
  const out: Digest = {};
  if (c.kind === 'flat') d(c.tensors, '', out);
  else for (const [n, m] of c.nets) d(m, `${n}/`, out);
  return { kind: c.kind, tensors: out };
};
const sha = (t: HostTensor): string => createHash('sha256').update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)).digest('hex');

const runChild = async (target: string, from: number, count: number, seed: number, keepDir: string): Promise<void> => {
  const t = TARGETS.get(target)!;
  const line = (o: object): void => {
    process.stdout.write(`${JSON.stringify(o)}\n`);
  };
  for (let i = from; i < from + count; i++) {
    line({ t: 'start', i });
    const t0 = performance.now();
    const r = await t.run(i, seed);
    const ms = r.readMs ?? performance.now() - t0;
    let kept: string | undefined;
    if (r.file !== undefined && (r.format === 'zip' || r.format === 'legacy')) {
      kept = join(keepDir, `${target}-${seed}-${i}.ckpt`);
      writeFileSync(kept, r.file);
      if (r.read !== undefined) writeFileSync(`${kept}.json`, JSON.stringify(digestOf(r.read)));
    }
    const message = r.outcome !== 'refused' && r.message !== undefined ? { message: r.message.slice(0, 300) } : {};
    line({ t: 'done', i, outcome: r.outcome, format: r.format, ms, rss: process.resourceUsage().maxRSS * 1024, ...message, ...(kept ? { kept } : {}) });
  }
};

// ---------------------------------------------------------------------------------------------
// Parent: spawn, watch, summarize

interface Options {
  readonly targets: readonly string[];
  readonly count?: number;
  readonly from: number;
  readonly seed: number;
  readonly caseTimeoutMs: number;
  readonly memoryLimit: number;
  readonly torchOracle: boolean;
  readonly batch: number;
}

type Outcome = 'refused' | 'same' | 'changed' | 'accepted' | 'corruption' | 'internal' | 'crash' | 'hang' | 'memory';
const BAD: ReadonlySet<Outcome> = new Set(['corruption', 'internal', 'crash', 'hang', 'memory']);

interface Tally {
  readonly counts: Map<string, number>;
  readonly problems: Array<{ i: number; outcome: Outcome; message: string }>;
  readonly kept: Array<{ i: number; file: string; format: string }>;
  slowest: { i: number; ms: number };
  peakRss: number;
  cases: number;
}

const runTarget = async (target: string, o: Options, keepDir: string): Promise<Tally> => {
  const total = o.count ?? TARGETS.get(target)!.defaultCount;
  const tally: Tally = { counts: new Map(), problems: [], kept: [], slowest: { i: -1, ms: 0 }, peakRss: 0, cases: 0 };
  const record = (i: number, outcome: Outcome, format: string | undefined, message = ''): void => {
    const key = format === 'zip' || format === 'legacy' ? `${outcome} (${format})` : outcome;
    tally.counts.set(key, (tally.counts.get(key) ?? 0) + 1);
    tally.cases++;
    if (BAD.has(outcome)) tally.problems.push({ i, outcome, message });
  };
  let next = o.from;
  const end = o.from + total;
  // A child's peak RSS only grows (the heap is not given back): a case that lifts a long-running
  // child over the limit is rerun alone in a fresh child, and judged on that run.
  let alone = false;
  while (next < end) {
    const count = alone ? 1 : Math.min(o.batch, end - next);
    const single = alone;
    alone = false;
    next = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--max-old-space-size=4096', fileURLToPath(import.meta.url), '--child', target, String(next), String(count), String(o.seed), keepDir], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let current = -1;
      let finished = next; // the first index not yet accounted for
      let timer: NodeJS.Timeout | undefined;
      let stderr = '';
      let settled = false;
      const settle = (resume: number): void => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        resolve(resume);
      };
      child.stderr.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-2000);
      });
      createInterface({ input: child.stdout }).on('line', (l) => {
        if (settled) return; // a line that was on its way when the case timed out
        const m = JSON.parse(l) as { t: string; i: number; outcome?: Outcome; format?: string; ms?: number; rss?: number; message?: string; kept?: string };
        if (m.t === 'start') {
          current = m.i;
          if (timer) clearTimeout(timer);
          timer = setTimeout(() => {
            record(current, 'hang', undefined, `over ${o.caseTimeoutMs} ms`);
            child.kill('SIGKILL');
            settle(current + 1);
          }, o.caseTimeoutMs);
          return;
        }
        if (timer) clearTimeout(timer);
        finished = m.i + 1;
        if (m.ms !== undefined && m.ms > tally.slowest.ms) tally.slowest = { i: m.i, ms: m.ms };
        if ((m.rss ?? 0) > o.memoryLimit) {
          child.kill('SIGKILL');
          if (single) {
            record(m.i, 'memory', m.format, `peak RSS ${((m.rss ?? 0) / 2 ** 20).toFixed(0)} MB, alone in a fresh process`);
            settle(m.i + 1);
          } else {
            alone = true;
            settle(m.i);
          }
          return;
        }
        tally.peakRss = Math.max(tally.peakRss, m.rss ?? 0);
        record(m.i, m.outcome!, m.format, m.message);
        if (m.kept !== undefined) tally.kept.push({ i: m.i, file: m.kept, format: m.format ?? '' });
        current = -1;
      });
      child.on('exit', (code, signal) => {
        if (settled) return;
        if (current >= 0) {
          record(current, 'crash', undefined, `exit ${code ?? signal}: ${stderr.split('\n').filter((x) => x.trim()).slice(-3).join(' / ')}`);
          settle(current + 1);
        } else if (finished < next + count) {
          // Died between cases (at start-up, say): count nothing, report it, move on.
          record(finished, 'crash', undefined, `child exited (${code ?? signal}) between cases: ${stderr.slice(-300)}`);
          settle(finished + 1);
        } else settle(finished);
      });
    });
  }
  return tally;
};

/** Ask PyTorch (torch.load(weights_only=True)) about every changed read: it must agree. */
const torchOracle = (kept: Tally['kept']): { agree: number; disagree: Array<{ file: string; why: string }>; unavailable?: string } => {
  if (kept.length === 0) return { agree: 0, disagree: [] };
  const manifest = join(mkdtempSync(join(tmpdir(), 'starspec-oracle-')), 'manifest.json');
  writeFileSync(manifest, JSON.stringify(kept.map((k) => k.file)));
  const script = fileURLToPath(new URL('./fuzz_torch_oracle.py', import.meta.url));
  // Run from an empty directory: never from one holding a folder named `torch`.
  const r = spawnSyncPython(script, manifest);
  if (r === undefined) return { agree: 0, disagree: [], unavailable: 'python3 with torch not found' };
  const verdicts = JSON.parse(r) as Array<{ file: string; torch: Record<string, [string, number[], string]> | null; kind?: string; error?: string }>;
  let agree = 0;
  const disagree: Array<{ file: string; why: string }> = [];
  for (const v of verdicts) {
    const ours = JSON.parse(readFileSync(`${v.file}.json`, 'utf8')) as { kind: string; tensors: Digest };
    if (v.torch === null) {
      disagree.push({ file: v.file, why: `PyTorch refuses it (${(v.error ?? '').slice(0, 200)}); starspec read it` });
      continue;
    }
    const a = JSON.stringify(Object.entries(ours.tensors).sort());
    const b = JSON.stringify(Object.entries(v.torch).sort());
    if (a === b) agree++;
    else disagree.push({ file: v.file, why: 'PyTorch reads different tensors' });
  }
  return { agree, disagree };
};

const spawnSyncPython = (script: string, manifest: string): string | undefined => {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, [script, manifest], { cwd: mkdtempSync(join(tmpdir(), 'starspec-py-')), encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status === 0) return r.stdout;
  }
  return undefined;
};

const parse = (argv: readonly string[]): Options | 'list' => {
  const get = (flag: string): string | undefined => {
    const k = argv.indexOf(flag);
    return k >= 0 ? argv[k + 1] : undefined;
  };
  if (argv.includes('--list')) return 'list';
  const targets = (get('--target') ?? [...TARGETS.keys()].join(',')).split(',');
  for (const t of targets) if (!TARGETS.has(t)) throw new Error(`unknown target '${t}' (targets: ${[...TARGETS.keys()].join(', ')})`);
  const num = (flag: string, dflt: number): number => {
    const v = get(flag);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${flag} wants a non-negative integer, got '${v}'`);
    return n;
  };
  const count = get('--count');
  return {
    targets,
    ...(count !== undefined ? { count: num('--count', 0) } : {}),
    from: num('--from', 0),
    seed: num('--seed', 14),
    caseTimeoutMs: num('--case-timeout-ms', 10_000),
    memoryLimit: num('--memory-limit-mb', 1024) * 2 ** 20,
    torchOracle: argv.includes('--torch-oracle'),
    batch: num('--batch', 500),
  };
};

const main = async (): Promise<number> => {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    await runChild(argv[1]!, Number(argv[2]), Number(argv[3]), Number(argv[4]), argv[5]!);
    return 0;
  }
  const o = parse(argv);
  if (o === 'list') {
    for (const [name, t] of TARGETS) console.log(`${name.padEnd(22)} ${String(t.defaultCount).padStart(5)}  ${t.description}`);
    return 0;
  }
  const keepDir = mkdtempSync(join(tmpdir(), 'starspec-fuzz-'));
  mkdirSync(keepDir, { recursive: true });
  let bad = 0;
  const started = performance.now();
  for (const target of o.targets) {
    const t0 = performance.now();
    const tally = await runTarget(target, o, keepDir);
    const secs = (performance.now() - t0) / 1000;
    const counts = [...tally.counts].sort().map(([k, n]) => `${k} ${n}`).join(', ');
    console.log(`${target}: ${tally.cases} cases in ${secs.toFixed(1)} s (seed ${o.seed}, from ${o.from}): ${counts}`);
    console.log(`  slowest read ${tally.slowest.ms.toFixed(0)} ms (#${tally.slowest.i}); peak RSS of a child over its cases ${(tally.peakRss / 2 ** 20).toFixed(0)} MB (limit ${(o.memoryLimit / 2 ** 20).toFixed(0)} MB)`);
    if (o.torchOracle && target.startsWith('checkpoint')) {
      const checkpoints = tally.kept.filter((k) => k.format === 'legacy' || k.format === 'zip');
      const r = torchOracle(checkpoints);
      if (r.unavailable) console.log(`  PyTorch oracle: ${r.unavailable}`);
      else {
        console.log(`  PyTorch oracle on ${checkpoints.length} changed reads: ${r.agree} agree, ${r.disagree.length} disagree`);
        for (const d of r.disagree.slice(0, 10)) console.log(`    corruption: ${d.file}: ${d.why}`);
        bad += r.disagree.length;
      }
    }
    for (const p of tally.problems.slice(0, 20)) console.log(`  ${p.outcome} #${p.i}: ${p.message} (rerun: --target ${target} --seed ${o.seed} --from ${p.i} --count 1)`);
    bad += tally.problems.length;
  }
  console.log(`${bad === 0 ? 'OK' : 'FAILED'}: ${bad} bad cases in ${((performance.now() - started) / 1000).toFixed(1)} s; kept files in ${keepDir}`);
  return bad === 0 ? 0 : 1;
};

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`fuzz: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(2);
  },
);
