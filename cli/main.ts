/**
 * The `starspec` command line (contract: ../shared/design/CLI.md). This is the only place where
 * error values become printed lines and exit codes. Interpreters load lazily, so `summary` never
 * loads TensorFlow.js.
 */
import { Command, CommanderError, Option } from 'commander';
import * as E from 'fp-ts/lib/Either.js';
import { readFileSync } from 'node:fs';
import { checkSpec } from '../dsl/check.ts';
import { formatError, specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Network, Spec } from '../dsl/ir.ts';
import { renderTable, summarize, fmtInt } from '../interpreters/analysis/summary.ts';
import { loadChecked, loadSpec } from './load.ts';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

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

const netOf = (spec: Spec, name: string): Network =>
  spec.networks.find((n) => n.name === name) ??
  die('--net', `no network '${name}' in ${spec.name}`, `networks: ${spec.networks.map((n) => n.name).join(', ')}`);

const program = new Command();
program
  .name('starspec')
  .description('Declare GAN architectures once; analyse, draw, run, import and export them.')
  .version(pkg.version)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

program
  .command('summary')
  .description('layers, output shapes, parameters and MACs of each network')
  .argument('<spec>', 'built-in spec name (stargan-v1, stargan-v2) or a .ts/.json spec file')
  .addOption(setOption())
  .option('--net <name>', 'only this network')
  .option('--json', 'print one JSON object')
  .action(async (specArg: string, o: { set: string[]; net?: string; json?: boolean }) => {
    const spec = ok(await loadChecked(specArg, o.set, o.net ? [o.net] : undefined));
    const nets = o.net ? [netOf(spec, o.net)] : spec.networks;
    const sums = nets.map((n) => ok(summarize(n)));
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
      process.stdout.write(`${JSON.stringify({ spec: spec.name, settings: spec.settings, networks })}\n`);
    } else {
      process.stdout.write(`${spec.name}\n\n${sums.map(renderTable).join('\n\n')}\n`);
    }
  });

program
  .command('check')
  .description('validate a spec: decoding, settings, shapes, losses and schedule')
  .argument('<spec>', 'built-in spec name or a .ts/.json spec file')
  .addOption(setOption())
  .option('--net <name>', 'check only this network (training is then not checked)')
  .action(async (specArg: string, o: { set: string[]; net?: string }) => {
    const spec = ok(await loadSpec(specArg, o.set));
    ok(checkSpec(spec, o.net ? [o.net] : undefined));
    const nets = o.net ? [netOf(spec, o.net)] : spec.networks;
    const counts = nets.map((n) => `${n.name} ${fmtInt(ok(summarize(n)).params)}`).join(', ');
    process.stdout.write(`OK ${spec.name}: ${counts} parameters${o.net ? '' : `; ${spec.training.phases.length} training phases`}\n`);
  });

program
  .command('diagram')
  .description('draw a network as SVG')
  .argument('<spec>', 'built-in spec name or a .ts/.json spec file')
  .addOption(setOption())
  .requiredOption('--net <name>', 'the network to draw')
  .requiredOption('--out <file.svg>', 'where to write the SVG')
  .option('--collapse', 'draw each block as one box')
  .action(async (specArg: string, o: { set: string[]; net: string; out: string; collapse?: boolean }) => {
    const spec = ok(await loadChecked(specArg, o.set, [o.net]));
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
  .option('--net <name>', 'the network to take (from a nested v2 checkpoint) or to match (flat)')
  .requiredOption('--out <weights.safetensors>', 'where to write the weights')
  .action(async (specArg: string, ckpt: string, o: { set: string[]; net?: string; out: string }) => {
    const spec = ok(await loadChecked(specArg, o.set, o.net ? [o.net] : undefined));
    const { importTorch } = await import('./import.ts');
    const written = ok(await importTorch(spec, ckpt, o.net, o.out));
    process.stderr.write(`wrote ${o.out}: ${written}\n`);
  });

const backendOption = (): Option =>
  new Option('--backend <name>', 'tfjs backend').choices(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto');

program
  .command('run')
  .description('one forward pass through the tfjs interpreter')
  .argument('<spec>', 'built-in spec name or a .ts/.json spec file')
  .addOption(setOption())
  .requiredOption('--net <name>', 'the network to run')
  .requiredOption('--weights <w.safetensors>', 'weights (official names and layouts)')
  .requiredOption('--inputs <in.safetensors>', 'inputs under the official argument names')
  .requiredOption('--out <out.safetensors>', 'where to write the outputs')
  .addOption(backendOption())
  .action(async (specArg: string, o: { set: string[]; net: string; weights: string; inputs: string; out: string; backend: string }) => {
    const spec = ok(await loadChecked(specArg, o.set, [o.net]));
    const { runCommand } = await import('./run.ts');
    const info = ok(await runCommand(spec, o.net, o.weights, o.inputs, o.out, o.backend));
    process.stderr.write(`wrote ${o.out} (${info})\n`);
  });

program
  .command('export')
  .description('write an ONNX model with a dynamic batch dimension')
  .argument('<spec>', 'built-in spec name or a .ts/.json spec file')
  .addOption(setOption())
  .requiredOption('--net <name>', 'a network, or latent_synthesis / reference_synthesis (StarGAN v2 pipelines)')
  .option('--weights <w.safetensors>', 'weights (default: freshly initialised, seeded)')
  .requiredOption('--out <model.onnx>', 'where to write the model')
  .option('--opset <n>', 'ONNX opset (13-21)', '17')
  .option('--seed <n>', 'seed for fresh weights', '0')
  .action(async (specArg: string, o: { set: string[]; net: string; weights?: string; out: string; opset: string; seed: string }) => {
    const pipelines = ['latent_synthesis', 'reference_synthesis'];
    const spec = ok(await loadChecked(specArg, o.set, pipelines.includes(o.net) ? undefined : [o.net]));
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
  .requiredOption('--data <dir|synthetic>', 'training data (repeatable for joint training); synthetic: the built-in dataset', collect, [])
  .requiredOption('--out <run dir>', 'the run directory')
  .option('--attrs <file>', "CelebA's list_attr_celeba.txt (with --data <CelebA images dir>)")
  .option('--steps <n>', 'train to this iteration (default: the spec\'s iterations)')
  .option('--data-seed <n>', 'seed of the synthetic data (default: the spec\'s seed)')
  .option('--resume', 'continue the run in --out from its checkpoint')
  .option('--quiet', 'no progress bar')
  .addOption(backendOption())
  .action(async (specArg: string, o: { set: string[]; data: string[]; attrs?: string; out: string; steps?: string; dataSeed?: string; resume?: boolean; quiet?: boolean; backend: string }) => {
    const spec = ok(await loadSpec(specArg, o.set));
    const steps = o.steps === undefined ? undefined : Number(o.steps);
    if (steps !== undefined && !(Number.isInteger(steps) && steps > 0)) die('--steps', `${o.steps} is not a positive integer`);
    const dataSeed = o.dataSeed === undefined ? undefined : Number(o.dataSeed);
    if (dataSeed !== undefined && !Number.isInteger(dataSeed)) die('--data-seed', `${o.dataSeed} is not an integer`);
    const { trainCommand } = await import('./train.ts');
    const msg = ok(
      await trainCommand(spec, {
        data: o.data,
        ...(o.attrs !== undefined ? { attrs: o.attrs } : {}),
        out: o.out,
        ...(steps !== undefined ? { steps } : {}),
        ...(dataSeed !== undefined ? { dataSeed } : {}),
        backend: o.backend as 'auto',
        resume: o.resume ?? false,
        quiet: o.quiet ?? false,
        argv: process.argv.slice(2),
      }),
    );
    process.stderr.write(`${msg}\n`);
  });

program
  .command('evaluate')
  .description('metrics of a run trained on the synthetic data (target-domain accuracy, content preservation)')
  .argument('<run dir>', 'the --out directory of `starspec train`')
  .option('--count <n>', 'held-out source images', '100')
  .option('--json', 'print {"metrics": {...}}')
  .addOption(backendOption())
  .action(async (dir: string, o: { count: string; json?: boolean; backend: string }) => {
    const count = Number(o.count);
    if (!(Number.isInteger(count) && count > 0)) die('--count', `${o.count} is not a positive integer`);
    const { evaluateRun } = await import('./evaluate.ts');
    const r = ok(await evaluateRun(dir, o.backend as 'auto', count));
    if (o.json) process.stdout.write(`${JSON.stringify({ spec: r.spec.name, metrics: r.metrics })}\n`);
    else {
      const w = Math.max(...Object.keys(r.metrics).map((k) => k.length));
      process.stdout.write(`${r.spec.name} run ${dir}\n${Object.entries(r.metrics).map(([k, v]) => `  ${k.padEnd(w)}  ${Number.isInteger(v) ? v : v.toFixed(4)}`).join('\n')}\n`);
    }
  });

for (const [name, what] of [
  ['translate', 'translate images with a trained run or imported weights'],
  ['sample', 'sample images with a trained run or imported weights'],
] as const) {
  program
    .command(name)
    .description(`${what} (not available in this version)`)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => die(name, 'is not implemented in this version of starspec', 'see the README for what this version supports'));
}

/** The single exit point: one line per error, non-zero exit. */
const main = async (): Promise<void> => {
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof Exit) {
      for (const err of e.errors) process.stderr.write(`starspec: error: ${formatError(err)}\n`);
      process.exitCode = 1;
    } else if (e instanceof CommanderError) {
      // commander already printed its one-line message (or help/version).
      process.exitCode = e.exitCode;
    } else {
      const err = e as Error;
      process.stderr.write(`starspec: internal error: ${err.message.split('\n')[0]} (please report this)\n`);
      if (process.env['STARSPEC_DEBUG']) process.stderr.write(`${err.stack}\n`);
      process.exitCode = 2;
    }
  }
};

await main();
