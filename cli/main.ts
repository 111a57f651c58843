/**
 * The `starspec` command line (contract: ../shared/design/CLI.md). This is the only place where
 * error values become printed lines and exit codes. Interpreters load lazily, so `summary` never
 * loads TensorFlow.js.
 */
import { Command, CommanderError, Help, Option } from 'commander';
import * as E from 'fp-ts/lib/Either.js';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { SpecExit } from '../api/module.ts';
import { checkPipeline, checkRunnable, checkSpec, requireTraining } from '../dsl/check.ts';
import { clip, formatError, specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Network, Spec } from '../dsl/ir.ts';
import { networksOf } from '../dsl/pipelines.ts';
import { renderTable, summarize, fmtInt } from '../interpreters/analysis/summary.ts';
import { settingsOf } from '../api/spec.ts';
import { loadChecked, loadRunnable, loadSpec } from './load.ts';
import { renderSettings } from './settings.ts';

// By package name (self-reference): the same path from the sources and from dist/.
const pkg = createRequire(import.meta.url)('starspec/package.json') as { version: string };

/** Thrown only inside this file to unwind to the single exit point. */
class Exit extends Error {
  constructor(readonly errors: readonly SpecError[]) {
    super('exit');
  }
}

const ok = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Exit(r.left);
  return r.right;
};
const die = (path: string, message: string, hint = ''): never => {
  throw new Exit([specError(path, message, hint)]);
};

const collect = (v: string, prev: string[]): string[] => [...prev, v];
const setOption = (): Option => new Option('--set <key=value>', 'override a setting (repeatable)').argParser(collect).default([]);
/** Spec modules (.ts, .js, ...) are programs: refuse them, also through a JSON `extends` (env STARSPEC_NO_CODE_SPECS=1 too). */
const codeSpecsOption = (): Option => new Option('--no-code-specs', 'refuse spec modules (.ts/.js: programs that run with your rights), also named by a JSON extends; JSON specs stay allowed');

const netOf = (spec: Spec, name: string): Network =>
  spec.networks.find((n) => n.name === name) ??
  die('--net', `no network '${name}' in ${spec.name}`, `networks: ${spec.networks.map((n) => n.name).join(', ')}`);

/** The command being parsed (for commander's own errors, which do not say). */
let current = '';

const program = new Command();
program
  .name('starspec')
  .description('Declare GAN architectures once; analyse, draw, run, import and export them.')
  .version(pkg.version)
  // Commander's own errors (unknown option, missing argument, ...) come back as CommanderError
  // and are printed by the single exit point below, as one line like every other failure.
  .exitOverride()
  .configureOutput({ outputError: () => undefined })
  .hook('preSubcommand', (_cmd, sub) => {
    current = sub.name();
  })
  // `--help`: required options say so (commander marks none). Inherited by every command.
  .configureHelp({
    optionDescription(this: Help, option: Option): string {
      const base = Help.prototype.optionDescription.call(this, option);
      return option.mandatory ? `(required) ${base}` : base;
    },
  });

program
  .command('summary')
  .description('layers, output shapes, parameters and MACs of each network')
  .argument('<spec>', 'built-in spec name (stargan-v1, stargan-v2) or a .ts/.json spec file')
  .addOption(setOption())
  .addOption(codeSpecsOption())
  .option('--net <name>', 'only this network')
  .option('--json', 'print one JSON object')
  .option('--settings', "list the spec's settings instead: key, type, default and doc (with --json: {\"spec\", \"doc\", \"settings\": [...]})")
  .option('--train', 'the estimated peak memory of a training step per phase instead, and the largest micro-batch that fits the wasm heap (with --json: {"spec", "training": {...}})')
  .option('--batch <n>', 'with --train: the declared batch to estimate (default: the spec\'s batchSize)')
  .action(async (specArg: string, o: { set: string[]; codeSpecs?: boolean; net?: string; json?: boolean; settings?: boolean; train?: boolean; batch?: string }) => {
    if (o.batch !== undefined && !o.train) die('--batch', 'only goes with --train', 'add --train, or set the batch with --set batchSize=N');
    if (o.train) {
      const spec0 = ok(requireTraining(ok(await loadChecked(specArg, o.set, undefined, o)), 'summary --train'));
      const batch = o.batch === undefined ? spec0.training.batchSize : Number(o.batch);
      if (!(Number.isInteger(batch) && batch >= 1)) die('--batch', `${o.batch} is not a positive integer`);
      const spec: Spec = { ...spec0, training: { ...spec0.training, batchSize: batch } };
      const { trainingSummary } = await import('./memory.ts');
      process.stdout.write(ok(trainingSummary(spec, o.json ?? false)));
      return;
    }
    if (o.settings) {
      const info = ok(await settingsOf(specArg, { set: o.set, ...(o.codeSpecs === false ? { codeSpecs: false } : {}) }));
      process.stdout.write(o.json ? `${JSON.stringify(info)}\n` : renderSettings(info));
      return;
    }
    const spec = ok(await loadChecked(specArg, o.set, o.net ? [o.net] : undefined, o));
    const nets = o.net ? [netOf(spec, o.net)] : spec.networks;
    const sums = nets.map((n) => ok(summarize(n)));
    // The declared pipelines (what run --net and export --net take besides networks), with their inputs and outputs.
    const pipelines = o.net ? [] : spec.pipelines.map((p) => ({ p, sig: ok(checkPipeline(spec, p)) }));
    const shape = (t: { dtype: string; shape: readonly number[] }): string => `(N${t.shape.map((d) => `, ${d}`).join('')})${t.dtype === 'index' ? ' index' : ''}`;
    if (o.json) {
      const networks = Object.fromEntries(
        sums.map((s) => [
          s.name,
          {
            params: s.params,
            macs: s.macs,
            inputs: s.inputs.map((i) => ({ ...i, shape: ['N', ...i.shape] })),
            outputs: s.outputs.map((i) => ({ ...i, shape: ['N', ...i.shape] })),
            layers: s.layers.map((l) => ({ ...l, shape: ['N', ...l.shape] })),
          },
        ]),
      );
      const pipes = Object.fromEntries(
        pipelines.map(({ p, sig }) => [
          p.name,
          {
            doc: p.doc,
            networks: networksOf(p),
            inputs: sig.inputs.map((i) => ({ name: i.name, dtype: i.dtype, shape: ['N', ...i.shape] })),
            outputs: sig.outputs.map((i) => ({ name: i.name, dtype: i.dtype, shape: ['N', ...i.shape] })),
          },
        ]),
      );
      process.stdout.write(`${JSON.stringify({ spec: spec.name, settings: spec.settings, networks, pipelines: pipes })}\n`);
    } else {
      const pipes = pipelines.map(
        ({ p, sig }) => `  ${p.name}: ${sig.inputs.map((i) => `${i.name} ${shape(i)}`).join(', ')} -> ${sig.outputs.map((i) => `${i.name} ${shape(i)}`).join(', ')}\n    ${p.doc}`,
      );
      process.stdout.write(`${spec.name}\n\n${sums.map(renderTable).join('\n\n')}\n${pipes.length > 0 ? `\npipelines (run --net, export --net)\n${pipes.join('\n')}\n` : ''}`);
    }
  });

program
  .command('check')
  .description('validate a spec: decoding, settings, shapes, losses and schedule')
  .argument('<spec>', 'built-in spec name or a .ts/.json spec file')
  .addOption(setOption())
  .addOption(codeSpecsOption())
  .option('--net <name>', 'check only this network, or this pipeline and its networks (training is then not checked)')
  .action(async (specArg: string, o: { set: string[]; codeSpecs?: boolean; net?: string }) => {
    const spec = ok(await loadSpec(specArg, o.set, o));
    const pipe = o.net === undefined ? undefined : spec.pipelines.find((p) => p.name === o.net);
    if (pipe !== undefined) {
      const sig = ok(checkRunnable(spec, pipe.name));
      const list = (ts: typeof sig.inputs | typeof sig.outputs): string => ts.map((t) => t.name).join(', ');
      process.stdout.write(`OK ${spec.name} pipeline ${pipe.name}: ${list(sig.inputs)} -> ${list(sig.outputs)} through ${networksOf(pipe).join(', ')}\n`);
      return;
    }
    ok(checkSpec(spec, o.net ? [o.net] : undefined));
    const nets = o.net ? [netOf(spec, o.net)] : spec.networks;
    const counts = nets.map((n) => `${n.name} ${fmtInt(ok(summarize(n)).params)}`).join(', ');
    process.stdout.write(`OK ${spec.name}: ${counts} parameters${o.net ? '' : `; ${spec.training === null ? 'inference only' : `${spec.training.phases.length} training phases`}; ${spec.pipelines.length} pipelines`}\n`);
  });

program
  .command('diagram')
  .description('draw a network as SVG')
  .argument('<spec>', 'built-in spec name or a .ts/.json spec file')
  .addOption(setOption())
  .addOption(codeSpecsOption())
  .requiredOption('--net <name>', 'the network to draw')
  .requiredOption('--out <file.svg>', 'where to write the SVG')
  .option('--collapse', 'draw each block as one box')
  .action(async (specArg: string, o: { set: string[]; codeSpecs?: boolean; net: string; out: string; collapse?: boolean }) => {
    const spec = ok(await loadChecked(specArg, o.set, [o.net], o));
    const { diagram } = await import('../interpreters/diagram/index.ts');
    const svg = ok(await diagram(netOf(spec, o.net), { collapse: o.collapse ?? false }));
    const { writeBytesAtomic } = await import('../io/files.ts');
    ok(await writeBytesAtomic(o.out, new TextEncoder().encode(svg)));
    process.stderr.write(`wrote ${o.out}\n`);
  });

program
  .command('import-torch')
  .description('read an official PyTorch checkpoint (zip or legacy) into a safetensors weights file')
  .argument('<spec>', 'built-in spec name or a .ts/.json spec file')
  .argument('<file.ckpt>', 'the checkpoint')
  .addOption(setOption())
  .addOption(codeSpecsOption())
  .option('--net <name>', 'the network to take (from a nested v2 checkpoint) or to match (flat)')
  .requiredOption('--out <weights.safetensors>', 'where to write the weights')
  .action(async (specArg: string, ckpt: string, o: { set: string[]; codeSpecs?: boolean; net?: string; out: string }) => {
    // Settings are checked for the networks actually imported (import.ts), not all of them.
    const spec = ok(o.net ? await loadChecked(specArg, o.set, [o.net], o) : await loadSpec(specArg, o.set, o));
    const { importTorch } = await import('./import.ts');
    const written = ok(await importTorch(spec, ckpt, o.net, o.out));
    process.stderr.write(`wrote ${o.out}: ${written}\n`);
  });

const backendOption = (): Option =>
  new Option('--backend <name>', 'tfjs backend').choices(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto');

/** `--weights`, repeatable: the files are merged (a tensor name in two of them is an error). */
const weightsOption = (what: string): Option =>
  new Option('--weights <run dir|w.safetensors>', `${what}; repeatable: the files are merged, a tensor name in two of them is an error`).argParser(collect).default([]);
const required = (flag: string, values: readonly string[]): void => {
  if (values.length === 0) die(flag, 'is required', 'a run directory of `starspec train`, or a .safetensors weights file (repeatable)');
};
const NET_HELP = 'a network or a pipeline of the spec (`starspec summary <spec>` lists both)';

program
  .command('run')
  .description('one forward pass of a network or a pipeline through the tfjs interpreter')
  .argument('<spec>', 'built-in spec name or a .ts/.json spec file')
  .addOption(setOption())
  .addOption(codeSpecsOption())
  .requiredOption('--net <name>', NET_HELP)
  .addOption(weightsOption('weights (official names and layouts; a pipeline of several networks takes NAME.-prefixed ones), or a run directory'))
  .requiredOption('--inputs <in.safetensors>', 'inputs under the official argument names (or the pipeline\'s)')
  .requiredOption('--out <out.safetensors>', 'where to write the outputs')
  .addOption(backendOption())
  .action(async (specArg: string, o: { set: string[]; codeSpecs?: boolean; net: string; weights: string[]; inputs: string; out: string; backend: string }) => {
    required('--weights', o.weights);
    const spec = ok(await loadRunnable(specArg, o.set, o.net, o));
    const { runCommand } = await import('./run.ts');
    const info = ok(await runCommand(spec, o.net, o.weights, o.inputs, o.out, o.backend));
    process.stderr.write(`wrote ${o.out} (${info})\n`);
  });

program
  .command('export')
  .description('write an ONNX model with a dynamic batch dimension')
  .argument('<spec>', 'built-in spec name or a .ts/.json spec file')
  .addOption(setOption())
  .addOption(codeSpecsOption())
  .requiredOption('--net <name>', NET_HELP)
  .addOption(weightsOption('weights (default: freshly initialised, seeded)'))
  .requiredOption('--out <model.onnx>', 'where to write the model')
  .option('--opset <n>', 'ONNX opset (13-21)', '17')
  .option('--seed <n>', 'seed for fresh weights', '0')
  .action(async (specArg: string, o: { set: string[]; codeSpecs?: boolean; net: string; weights: string[]; out: string; opset: string; seed: string }) => {
    const spec = ok(await loadRunnable(specArg, o.set, o.net, o));
    const opset = Number(o.opset);
    if (!Number.isInteger(opset) || opset < 13 || opset > 21) die('--opset', `${o.opset} is not supported`, 'use an opset from 13 to 21');
    const { exportCommand } = await import('./export.ts');
    const info = ok(await exportCommand(spec, o.net, o.weights, o.out, opset, Number(o.seed)));
    process.stderr.write(`wrote ${o.out} (${info})\n`);
  });

program
  .command('train')
  .description("train a spec by its schedule: checkpoints, samples, logs and the resolved spec go under --out")
  .argument('<spec>', 'built-in spec name or a .ts/.json spec file')
  .addOption(setOption())
  .addOption(codeSpecsOption())
  .requiredOption('--data <dir|synthetic>', 'training data (repeatable for joint training); synthetic: the built-in dataset', collect, [])
  .requiredOption('--out <run dir>', 'the run directory')
  .option('--attrs <file>', "CelebA's list_attr_celeba.txt (with --data <CelebA images dir>)")
  .option('--steps <n>', 'train to this iteration (default: the spec\'s iterations)')
  .option('--data-seed <n>', 'seed of the synthetic data (default: the spec\'s seed)')
  .option('--resume', 'continue the run in --out from its checkpoint')
  .option('--overwrite', 'replace a run already in --out')
  .option('--quiet', 'no progress bar')
  .option('--time-limit <minutes>', 'stop with a checkpoint after this many minutes (a normal end; --resume continues)')
  .addOption(new Option('--check-images <how>', 'check image folders before step 1: decode every file (finds truncated ones), read headers only, or none').choices(['decode', 'header', 'none']).default('decode'))
  .option('--skip-bad-images', 'leave out image files that cannot be used (a warning lists them) instead of stopping')
  .addOption(backendOption())
  .option('--threads <n>', 'wasm backend: XNNPACK threads, 1-8 (default 1; 2 pays off from about 64 px or official widths)')
  .option('--micro-batch <n>', 'evaluate each batch in chunks of this many samples, accumulating gradients before each optimizer step (the same run up to float rounding; default: the whole batch if it fits in memory, else the largest chunk that does)')
  .addOption(
    weightsOption(
      'weights to start from (official names: one network\'s, or NAME.-prefixed; a run directory): those networks start from them, the others fresh; a frozen network (stargan-v2\'s fan when wHpf > 0, from wing.ckpt) must be given',
    ),
  )
  .action(async (specArg: string, o: { set: string[]; codeSpecs?: boolean; data: string[]; attrs?: string; out: string; steps?: string; dataSeed?: string; resume?: boolean; overwrite?: boolean; quiet?: boolean; timeLimit?: string; backend: string; threads?: string; checkImages: 'decode' | 'header' | 'none'; skipBadImages?: boolean; microBatch?: string; weights: string[] }) => {
    const spec = ok(await loadSpec(specArg, o.set, o));
    const steps = o.steps === undefined ? undefined : Number(o.steps);
    if (steps !== undefined && !(Number.isInteger(steps) && steps > 0)) die('--steps', `${o.steps} is not a positive integer`);
    const dataSeed = o.dataSeed === undefined ? undefined : Number(o.dataSeed);
    if (dataSeed !== undefined && !Number.isInteger(dataSeed)) die('--data-seed', `${o.dataSeed} is not an integer`);
    const minutes = o.timeLimit === undefined ? undefined : Number(o.timeLimit);
    if (minutes !== undefined && !(minutes > 0)) die('--time-limit', `${o.timeLimit} is not a positive number of minutes`);
    const threads = o.threads === undefined ? undefined : Number(o.threads);
    if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 8)) die('--threads', `${o.threads} is not a whole number from 1 to 8`);
    const microBatch = o.microBatch === undefined ? undefined : Number(o.microBatch);
    if (microBatch !== undefined && !(Number.isInteger(microBatch) && microBatch >= 1)) die('--micro-batch', `${o.microBatch} is not a positive integer`);
    const { trainCommand } = await import('./train.ts');
    const msg = ok(
      await trainCommand(spec, {
        data: o.data,
        ...(o.attrs !== undefined ? { attrs: o.attrs } : {}),
        out: o.out,
        ...(steps !== undefined ? { steps } : {}),
        ...(dataSeed !== undefined ? { dataSeed } : {}),
        backend: o.backend as 'auto',
        ...(threads !== undefined ? { threads } : {}),
        ...(microBatch !== undefined ? { microBatch } : {}),
        resume: o.resume ?? false,
        overwrite: o.overwrite ?? false,
        quiet: o.quiet ?? false,
        ...(minutes !== undefined ? { timeLimit: minutes * 60 } : {}),
        weights: o.weights,
        checkImages: o.checkImages,
        skipBadImages: o.skipBadImages ?? false,
        argv: process.argv.slice(2),
      }),
    );
    process.stderr.write(`${msg}\n`);
  });

// FID / LPIPS (issue 17): shared options of `fid` and `evaluate --metrics`.
const positiveInt = (flag: string, v: string, min = 1): number => {
  const n = Number(v);
  if (!(Number.isInteger(n) && n >= min)) die(flag, `${v} is not a whole number >= ${min}`);
  return n;
};
const engineOption = (): Option =>
  new Option('--engine <name>', 'feature networks on onnxruntime-node (onnx) or tfjs; auto: onnx when onnxruntime-node is installed').choices(['auto', 'onnx', 'tfjs']).default('auto');
const inceptionOption = (): Option =>
  new Option('--inception <file>', "Inception-v3 weights: torchvision's inception_v3_google-0cc3c7bd.pth, or import-torch's output (default: RANDOM weights, labelled as such)");

program
  .command('evaluate')
  .description('metrics of a run: on the synthetic data target-domain accuracy and content preservation; with --metrics fid,lpips the official StarGAN v2 evaluation')
  .argument('<run dir>', 'the --out directory of `starspec train`; with --metrics also a weights file (with --spec, --set)')
  .option('--count <n>', 'held-out source images', '100')
  .option('--json', 'print {"metrics": {...}}')
  .addOption(weightsOption('more weights beside the run\'s checkpoint (networks it does not hold)'))
  .addOption(backendOption())
  .option('--metrics <list>', "fid,lpips: StarGAN v2's metrics/eval.py protocol on --data (instead of the synthetic judges)")
  .option('--data <val folder>', '--metrics: the validation images, one sub-folder per domain (sorted: domain 0, 1, ...)')
  .option('--train-data <folder>', "--metrics: FID's real images, one sub-folder per domain (default: the run's training folder, else --data)")
  .addOption(new Option('--mode <mode>', '--metrics: latent-guided, reference-guided or both').choices(['latent', 'reference', 'both']).default('both'))
  .option('--outs-per-domain <n>', '--metrics: outputs per source image (num_outs_per_domain)', '10')
  .option('--batch-size <n>', '--metrics: source images per batch (val_batch_size)', '32')
  .option('--seed <n>', '--metrics: seed of the latent codes', '777')
  .option('--spec <spec>', '--metrics with a weights file: the spec (default stargan-v2)')
  .addOption(setOption())
  .addOption(inceptionOption())
  .option('--lpips-alexnet <file>', "--metrics: AlexNet weights: torchvision's alexnet-owt-7be5be79.pth (default: RANDOM weights, labelled as such)")
  .option('--lpips-heads <file>', "--metrics: the LPIPS heads: the official metrics/lpips_weights.ckpt (default: RANDOM weights, labelled as such)")
  .addOption(engineOption())
  .option('--threads <n>', '--metrics: compute threads (onnxruntime intra-op; wasm XNNPACK 1-8)')
  .option('--keep-images <dir>', '--metrics: also write the generated images (DIR/<mode>/<task>/0001_01.png, as eval.py)')
  .option('--quiet', 'no progress bar')
  .action(async (dir: string, o: { count: string; json?: boolean; weights: string[]; backend: string } & Record<string, string | string[] | boolean | undefined>) => {
    if (o['metrics'] !== undefined) {
      const list = String(o['metrics']).split(',').map((x) => x.trim()).filter((x) => x !== '');
      const unknown = list.filter((x) => x !== 'fid' && x !== 'lpips');
      if (unknown.length > 0 || list.length === 0) die('--metrics', `unknown metric(s) ${unknown.join(', ') || '(none)'}`, 'use fid, lpips or fid,lpips');
      if (o['data'] === undefined) die('--data', 'is required with --metrics', 'the validation folder: one sub-folder of images per domain');
      const str = (k: string): string | undefined => (o[k] === undefined ? undefined : String(o[k]));
      const { evaluateMetrics, renderMetricsTable } = await import('./eval-metrics.ts');
      const mode = String(o['mode']);
      const r = ok(
        await evaluateMetrics(dir, {
          metrics: new Set(list as Array<'fid' | 'lpips'>),
          data: String(o['data']),
          ...(str('trainData') !== undefined ? { trainData: str('trainData')! } : {}),
          modes: mode === 'both' ? ['latent', 'reference'] : [mode as 'latent'],
          outsPerDomain: positiveInt('--outs-per-domain', String(o['outsPerDomain']), 2),
          batchSize: positiveInt('--batch-size', String(o['batchSize'])),
          seed: positiveInt('--seed', String(o['seed']), 0),
          weights: o.weights,
          ...(str('spec') !== undefined ? { spec: str('spec')! } : {}),
          set: (o['set'] as string[] | undefined) ?? [],
          ...(str('inception') !== undefined ? { inception: str('inception')! } : {}),
          ...(str('lpipsAlexnet') !== undefined ? { lpipsAlexnet: str('lpipsAlexnet')! } : {}),
          ...(str('lpipsHeads') !== undefined ? { lpipsHeads: str('lpipsHeads')! } : {}),
          engine: String(o['engine']) as 'auto',
          backend: o.backend as 'auto',
          ...(str('threads') !== undefined ? { threads: positiveInt('--threads', str('threads')!) } : {}),
          ...(str('keepImages') !== undefined ? { keepImages: str('keepImages')! } : {}),
          quiet: o['quiet'] === true || o.json === true,
        }),
      );
      const warn = r.randomWeights ? 'RANDOM-weight feature networks: these values test the pipeline and are NOT comparable with published FID/LPIPS (see README: --inception, --lpips-alexnet, --lpips-heads)' : null;
      if (o.json)
        process.stdout.write(
          `${JSON.stringify({ spec: r.spec, step: r.step, metrics: Object.fromEntries(r.metrics), featureNetworks: r.featureNetworks, randomWeights: r.randomWeights, trainData: r.trainData, ...(r.trainDataNote !== null ? { trainDataNote: r.trainDataNote } : {}), engine: r.engine, generated: r.generated, seconds: r.seconds })}\n`,
        );
      else {
        const nets = Object.entries(r.featureNetworks).map(([k, v]) => `${k}: ${v}`).join('; ');
        process.stdout.write(
          `${r.spec} ${dir}${r.step !== null && Number.isFinite(r.step) ? ` (step ${r.step})` : ''}: ${r.generated} generated images, ${r.seconds.toFixed(1)} s (${r.engine})\n` +
            `${warn !== null ? `  ${warn}\n` : ''}  feature networks: ${nets}\n` +
            (r.metrics.some(([k]) => k.startsWith('FID')) ? `  FID real images: ${r.trainData}${r.trainDataNote !== null ? ` (${r.trainDataNote})` : ''}\n` : '') +
            `${renderMetricsTable(r)}\n`,
        );
      }
      if (warn !== null && o.json) process.stderr.write(`starspec: warning: ${warn}\n`);
      return;
    }
    const count = Number(o.count);
    if (!(Number.isInteger(count) && count > 0)) die('--count', `${o.count} is not a positive integer`);
    const { evaluateRun } = await import('./evaluate.ts');
    const r = ok(await evaluateRun(dir, o.backend as 'auto', count, o.weights));
    if (o.json) process.stdout.write(`${JSON.stringify({ spec: r.spec.name, metrics: r.metrics })}\n`);
    else {
      const w = Math.max(...Object.keys(r.metrics).map((k) => k.length));
      process.stdout.write(`${r.spec.name} run ${dir}\n${Object.entries(r.metrics).map(([k, v]) => `  ${k.padEnd(w)}  ${Number.isInteger(v) ? v : v.toFixed(4)}`).join('\n')}\n`);
    }
  });

program
  .command('fid')
  .description("the Frechet Inception Distance of two image folders, as StarGAN v2's metrics/fid.py (calculate_fid_given_paths)")
  .argument('<A>', 'a folder of images (searched recursively)')
  .argument('<B>', 'another folder of images')
  .option('--img-size <px>', 'images are resized to this first, then to 299 (get_eval_loader)', '256')
  .option('--batch-size <n>', 'images per Inception forward pass', '50')
  .addOption(inceptionOption())
  .addOption(engineOption())
  .addOption(backendOption())
  .option('--threads <n>', 'compute threads (onnxruntime intra-op; wasm XNNPACK 1-8)')
  .option('--json', 'print {"fid": ..., ...}')
  .option('--quiet', 'no progress bar')
  .action(async (a: string, b: string, o: { imgSize: string; batchSize: string; inception?: string; engine: string; backend: string; threads?: string; json?: boolean; quiet?: boolean }) => {
    const { fidOfFolders } = await import('./metrics.ts');
    const r = ok(
      await fidOfFolders(a, b, {
        imgSize: positiveInt('--img-size', o.imgSize),
        batchSize: positiveInt('--batch-size', o.batchSize),
        ...(o.inception !== undefined ? { inception: o.inception } : {}),
        engine: o.engine as 'auto',
        backend: o.backend as 'auto',
        ...(o.threads !== undefined ? { threads: positiveInt('--threads', o.threads) } : {}),
        quiet: o.quiet === true || o.json === true,
      }),
    );
    const weights = r.random ? 'RANDOM-weight Inception-v3 (not comparable with published FIDs; pass --inception inception_v3_google-0cc3c7bd.pth)' : `Inception-v3 ${r.inception}`;
    if (o.json)
      process.stdout.write(`${JSON.stringify({ fid: r.fid, images: { A: r.counts[0], B: r.counts[1] }, inception: r.inception, randomWeights: r.random, engine: r.engine, parts: { mean: r.meanTerm, trace: r.traceTerm, sqrt: r.sqrtTerm }, route: r.route, seconds: r.seconds })}\n`);
    else process.stdout.write(`FID ${r.fid.toFixed(4)}  (${a}: ${r.counts[0]} images, ${b}: ${r.counts[1]} images; ${weights}; ${r.engine}, ${r.imagesPerSecond.toFixed(1)} images/s)\n`);
  });

const translateWeights = (): Option =>
  weightsOption("a run directory of `starspec train` (EMA weights where kept; its spec.json must equal <spec>), or weights with official names (one network's, or NAME.-prefixed as import-torch writes)");

program
  .command('translate')
  .description('translate image files with a trained run or imported weights (v1: target labels; v2: reference- or latent-guided)')
  .argument('<spec>', "built-in spec name or a .ts/.json spec file (for a run: the same spec and --set values, or its spec.json)")
  .addOption(setOption())
  .addOption(codeSpecsOption())
  .addOption(translateWeights())
  .requiredOption('--input <image|folder>', 'an image file, or a folder of them (PNG, JPEG, ...)')
  .requiredOption('--out <image|folder>', 'an image file (.png, .jpg, .webp): the result, or a grid when there are several; else a folder: one file per result')
  .option('--target <values>', 'v1: the full label vector c, comma-separated (e.g. 0,1,0,1,1); for categorical labels also a class index')
  .option('--attrs <name=v,...>', 'v1: set these attributes (names from selectedAttrs; RaFD=k for a class) on --source-labels, or on all zeros; a hair colour set to 1 clears the other hair colours', collect, [])
  .option('--all-targets', "v1: the official test targets (each hair colour one-hot, every other attribute of --source-labels flipped; each class of categorical labels)")
  .option('--source-labels <values|names>', "v1: the inputs' own labels, 0/1 in selectedAttrs order (1,0,0,1,1) or the names of the attributes they have (Black_Hair,Male)")
  .option('--ref <image|folder>', 'v2: reference-guided: the reference image(s), or a folder of per-domain subfolders')
  .option('--ref-domain <k>', "v2: the references' domain")
  .option('--domain <k>', 'v2: latent-guided translation to this domain')
  .option('--psi <x>', 'v2 latent-guided: truncation toward the mean style of 10,000 z (default 1: none)')
  .option('--seed <n>', 'v2 latent-guided: seed of the latent code (default 0)')
  .option('--center-crop <px>', 'crop a centred square of this side before resizing to imageSize (default: the largest centred square)')
  .option('--batch-size <n>', 'images per forward pass', '8')
  .option('--quiet', 'no progress bar')
  .addOption(backendOption())
  .addHelpText(
    'after',
    `
Inputs are centre-cropped to a square and resized to imageSize; results are imageSize square.
With an image file as --out, one input and one result write the translated image itself; otherwise
a grid: a row per input, the source first, then each result (--ref: a first row of references).
With a folder as --out: <input stem>.<ext>, or <input stem>_<tag>.<ext> when there are several
results per input (tags: the target attribute, ref-<reference stem>), in the input's format.

StarGAN v1 needs the target as labels; plain images carry none, so give one of
  --target 0,1,0,1,1                      the full label vector c, used as is
  --attrs Black_Hair=1,Male=0             these attributes set on --source-labels (else all 0)
  --all-targets --source-labels 1,0,0,1,1 the official test grid (needs the source's labels)
StarGAN v2: --ref <image|folder> --ref-domain <k> (reference-guided), or --domain <k>
[--psi 0.7] [--seed n] (latent-guided).

Examples:
  starspec translate stargan-v1 --weights G.safetensors --input faces/ --out out/ --attrs Blond_Hair=1 --source-labels Black_Hair,Young
  starspec translate runs/demo/spec.json --weights runs/demo --input a.png --out grid.png --all-targets --source-labels 1,0,0,0,1
  starspec translate stargan-v2 --set numDomains=3 --set wHpf=0 --weights nets.safetensors --input cat.jpg --ref dog.jpg --ref-domain 1 --out cat2dog.jpg`,
  )
  .action(async (specArg: string, o: { set: string[]; codeSpecs?: boolean; weights: string[]; input: string; out: string; backend: string } & Record<string, unknown>) => {
    required('--weights', o.weights);
    const spec = ok(await loadSpec(specArg, o.set, o));
    const { translateCommand } = await import('./translate.ts');
    const msg = ok(await translateCommand(spec, o as unknown as import('./translate.ts').TranslateOptions));
    process.stderr.write(`${msg}\n`);
  });

program
  .command('sample')
  .description('a grid of generated images: v2 latent-guided (columns: domains x latent codes); v1 the official test grid')
  .argument('<spec>', "built-in spec name or a .ts/.json spec file (for a run: the same spec and --set values, or its spec.json)")
  .addOption(setOption())
  .addOption(codeSpecsOption())
  .addOption(translateWeights())
  .requiredOption('--input <image|folder>', 'the source images (one grid row each)')
  .requiredOption('--out <grid.png>', 'the grid image (.png, .jpg, .webp)')
  .option('--domains <list>', 'v2: target domains, comma-separated (default: all)')
  .option('--psi <x>', 'v2: truncation toward the mean style of 10,000 z (default 1: none)')
  .option('--seed <n>', 'v2: seed of the latent codes (default 0); code j is the same in every row and domain')
  .option('--per-domain <m>', 'v2: latent codes per domain (default 1)')
  .option('--source-labels <values|names>', "v1: the inputs' own labels (0/1 in selectedAttrs order, or the names they have)")
  .option('--center-crop <px>', 'crop a centred square of this side before resizing to imageSize (default: the largest centred square)')
  .option('--batch-size <n>', 'images per forward pass', '8')
  .option('--quiet', 'no progress bar')
  .addOption(backendOption())
  .addHelpText(
    'after',
    `
Rows are the inputs, the source first. StarGAN v2: then per domain, --per-domain latent codes
(s = F(z, y), truncated as psi * s + (1 - psi) * mean style). StarGAN v1: then each official
test target of --source-labels (each hair colour, every other attribute flipped).

Examples:
  starspec sample stargan-v2 --set numDomains=3 --set wHpf=0 --weights nets.safetensors --input val/ --out latent.png --psi 0.7 --per-domain 3
  starspec sample runs/demo/spec.json --weights runs/demo --input faces/ --out test.png --source-labels 1,0,0,1,1`,
  )
  .action(async (specArg: string, o: { set: string[]; codeSpecs?: boolean; weights: string[]; input: string; out: string; backend: string } & Record<string, unknown>) => {
    required('--weights', o.weights);
    const spec = ok(await loadSpec(specArg, o.set, o));
    const { sampleCommand } = await import('./translate.ts');
    const msg = ok(await sampleCommand(spec, o as unknown as import('./translate.ts').SampleOptions));
    process.stderr.write(`${msg}\n`);
  });

program
  .command('export-torch')
  .description('write the spec as a standalone PyTorch project: models.py, objective.py, train.py (torchrun for several processes)')
  .argument('<spec>', 'built-in spec name or a .ts/.json spec file')
  .addOption(setOption())
  .addOption(codeSpecsOption())
  .requiredOption('--out <dir>', 'the folder to write')
  .option('--overwrite', 'replace an export already in --out')
  .action(async (specArg: string, o: { set: string[]; codeSpecs?: boolean; out: string; overwrite?: boolean }) => {
    const spec = ok(await loadSpec(specArg, o.set, o));
    ok(requireTraining(spec, 'export-torch'));
    ok(checkSpec(spec));
    const { exportTorchCommand } = await import('./export-torch.ts');
    const info = ok(await exportTorchCommand(spec, o.out, o.overwrite ?? false));
    process.stderr.write(`wrote ${o.out} (${info})\n`);
  });

program
  .command('data')
  .description('write a dataset as image files: `data synthetic` writes the built-in synthetic data as a folder other trainers read')
  .argument('<kind>', 'synthetic')
  .option('--spec <spec>', 'the spec whose datasets to write (built-in name or a .ts/.json file)', 'stargan-v2')
  .addOption(setOption())
  .addOption(codeSpecsOption())
  .requiredOption('--out <dir>', 'the folder to write')
  .requiredOption('--count <n>', 'images to write (v2: split evenly among the domains)')
  .option('--seed <n>', "seed of the data (default: the spec's seed)")
  .option('--overwrite', 'write into a folder that is not empty')
  .action(async (kind: string, o: { spec: string; set: string[]; codeSpecs?: boolean; out: string; count: string; seed?: string; overwrite?: boolean }) => {
    if (kind !== 'synthetic') die('<kind>', `'${kind}' is not a dataset this command writes`, 'use: starspec data synthetic --out DIR --count N');
    const count = Number(o.count);
    if (!(Number.isInteger(count) && count > 0)) die('--count', `${o.count} is not a positive integer`);
    const seed = o.seed === undefined ? undefined : Number(o.seed);
    if (seed !== undefined && !Number.isInteger(seed)) die('--seed', `${o.seed} is not an integer`);
    const spec = ok(await loadSpec(o.spec, o.set, o));
    ok(requireTraining(spec, 'data synthetic'));
    const { syntheticDataCommand } = await import('./data.ts');
    const info = ok(await syntheticDataCommand(spec, o.out, count, seed, o.overwrite ?? false));
    process.stderr.write(`wrote ${o.out} (${info})\n`);
  });

program
  .command('schema')
  .description('print the JSON Schema of JSON spec files (editors validate and complete them with it)')
  .argument('[spec...]', 'spec definitions whose settings the schema knows by name (default: the built-in specs)')
  .option('--out <file.json>', 'write it to this file instead of stdout')
  .addOption(codeSpecsOption())
  .action(async (specArgs: string[], o: { out?: string; codeSpecs?: boolean }) => {
    const { specSchema } = await import('../api/schema.ts');
    const { builtinSpecs } = await import('../specs/index.ts');
    const { loadSource } = await import('../api/spec.ts');
    const defs = [];
    for (const a of specArgs.length > 0 ? specArgs : [...builtinSpecs.keys()]) {
      const src = ok(await loadSource(a, process.cwd(), o.codeSpecs === false ? { codeSpecs: false } : {}));
      if (src.kind === 'ir') die(a, 'is a resolved IR, which has no settings', 'name a built-in spec or a .ts/.js spec definition');
      else defs.push(src.def);
    }
    const text = `${JSON.stringify(specSchema(defs), null, 2)}\n`;
    if (o.out === undefined) process.stdout.write(text);
    else {
      const { writeBytesAtomic } = await import('../io/files.ts');
      ok(await writeBytesAtomic(o.out, new TextEncoder().encode(text)));
      process.stderr.write(`wrote ${o.out}\n`);
    }
  });

program
  .command('init')
  .description('start a project of your own: package.json with scripts, a TypeScript and a JSON variant spec, a README')
  .argument('[dir]', 'the project folder (created if missing)', '.')
  .option('--force', 'overwrite files the scaffold would write')
  .action(async (dir: string, o: { force?: boolean }) => {
    const { initProject } = await import('./init.ts');
    process.stderr.write(`${ok(await initProject(dir, pkg.version, o.force ?? false))}\n`);
  });

/** The most error lines one failure prints; the rest are counted on a last line. */
const MAX_ERROR_LINES = 50;

const printErrors = (errors: readonly SpecError[]): void => {
  const shown = errors.length > MAX_ERROR_LINES ? errors.slice(0, MAX_ERROR_LINES - 1) : errors;
  for (const err of shown) process.stderr.write(`starspec: error: ${formatError(err)}\n`);
  if (shown.length < errors.length) process.stderr.write(`starspec: error: ${current || 'starspec'}: ${errors.length - shown.length} more errors not shown\n`);
};

/**
 * Whether the command ran to its end. A process that exits before (a spec's code calling
 * process.exit(0) from a timer, say) must not look like a success: see the 'exit' listener below.
 */
let finished = false;
process.on('exit', (code) => {
  if (finished || code !== 0) return;
  process.stderr.write(`starspec: error: ${current || 'starspec'}: the process was ended before the command finished (did a spec module call process.exit?)\n`);
  process.exitCode = 1;
});

/**
 * An exception or rejection nothing caught, thrown by a spec module's own code (a timer it set,
 * process.exit while it loads: module.ts SpecExit) or, if it comes from starspec, a bug. One line
 * either way, and an exit.
 */
const packageRoot = fileURLToPath(new URL('..', import.meta.url));
/** The real process.exit (module.ts withoutExit replaces it while a spec loads). */
const exit = process.exit.bind(process);
const uncaught = (e: unknown): void => {
  const err = e instanceof Error ? e : new Error(String(e));
  const frame = String(err.stack ?? '')
    .split('\n')
    .slice(1)
    .map((l) => l.match(/\(?((?:file:\/\/)?\/[^():]+):(\d+):\d+\)?$/))
    .find((m) => m !== null && !m[1]!.replace(/^file:\/\//, '').startsWith(packageRoot));
  const file = frame ? frame[1]!.replace(/^file:\/\//, '') : '';
  const foreign = e instanceof SpecExit || file !== '';
  if (foreign) process.stderr.write(`starspec: error: ${formatError(specError(file ? `${file}:${frame![2]}` : current || 'starspec', clip(err.message.split('\n')[0]!), 'an exception from a spec module\'s own code, which nothing caught'))}\n`);
  else process.stderr.write(`starspec: internal error: ${clip(err.message.split('\n')[0]!)} (please report this)\n`);
  if (process.env['STARSPEC_DEBUG']) process.stderr.write(`${err.stack}\n`);
  finished = true;
  exit(foreign ? 1 : 2);
};
process.on('uncaughtException', uncaught);
process.on('unhandledRejection', uncaught);

/** The single exit point: one line per error, non-zero exit. */
const main = async (): Promise<void> => {
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof Exit) {
      printErrors(e.errors);
      process.exitCode = 1;
    } else if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') process.exitCode = e.exitCode;
      else {
        // One line: `starspec: error: <command>: <what> (<what to do>)`.
        const [what = '', ...more] = e.message.replace(/^error: /, '').split('\n').map((l) => l.trim()).filter((l) => l !== '');
        const usage = `run \`starspec${current ? ` ${current}` : ''} --help\` for usage`;
        const hint = [...more.map((l) => l.replace(/^\((.*)\)$/, '$1')), usage].join('; ');
        process.stderr.write(`starspec: error: ${formatError(specError(current || 'starspec', what, hint))}\n`);
        process.exitCode = 1;
      }
    } else {
      const err = e as Error;
      process.stderr.write(`starspec: internal error: ${clip(String(err?.message ?? e).split('\n')[0]!)} (please report this)\n`);
      if (process.env['STARSPEC_DEBUG']) process.stderr.write(`${err?.stack}\n`);
      process.exitCode = 2;
    }
  }
  finished = true;
  // A failure ends here, whatever a spec module left running (a timer of a top-level await that
  // was given up on). stderr is written synchronously, so nothing printed is lost.
  if (process.exitCode !== undefined && process.exitCode !== 0) exit();
};

await main();
