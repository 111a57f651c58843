/**
 * `starspec init [dir]`: a small project of one's own: package.json with scripts, a variant spec in
 * TypeScript and one in JSON (with `$schema`, so editors validate and complete it), a tsconfig for
 * the editor and `npm run typecheck`, and a README of the commands. Existing files are never
 * overwritten without --force.
 */
import * as E from 'fp-ts/lib/Either.js';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { specError, type Result } from '../dsl/errors.ts';

export interface ScaffoldFile {
  readonly path: string;
  readonly text: string;
}

const packageName = (dir: string): string =>
  basename(resolve(dir))
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[._-]+/, '') || 'my-starspec-project';

/** The files of a new project (pure: names and contents). */
export const scaffold = (name: string, version: string): readonly ScaffoldFile[] => {
  const train = 'starspec train my-variant.ts --data synthetic --out runs/my-variant --steps 300';
  const pkg = {
    name,
    version: '0.1.0',
    private: true,
    type: 'module',
    scripts: {
      check: 'starspec check my-variant.ts && starspec check my-variant.json',
      summary: 'starspec summary my-variant.ts',
      settings: 'starspec summary my-variant.ts --settings',
      train,
      evaluate: 'starspec evaluate runs/my-variant',
      export: 'starspec export my-variant.ts --net generator --weights runs/my-variant/checkpoint.safetensors --out runs/my-variant/generator.onnx',
      typecheck: 'tsc --noEmit',
    },
    dependencies: { starspec: `^${version}` },
    devDependencies: { '@types/node': '^20.19.0', typescript: '~5.9.0' },
  };
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noUncheckedIndexedAccess: true,
      noEmit: true,
    },
    include: ['*.ts'],
  };
  const variantTs = `/**
 * A StarGAN v1 variant: the official architecture and objective with other defaults, narrow
 * enough to train on a CPU in minutes. \`npm run settings\` lists every setting you can change
 * here (or with --set key=value on the command line).
 */
import { withDefaults } from 'starspec/dsl';
import { starganV1 } from 'starspec/specs';

export default withDefaults(starganV1, 'my-variant', {
  imageSize: 32,
  gConvDim: 8,
  gRepeatNum: 2,
  gDownNum: 0,
  gOuterKernel: 3,
  dConvDim: 16,
  dRepeatNum: 4,
  batchSize: 16,
  nCritic: 1,
  gLr: 0.001,
  dLr: 0.001,
  lambdaRec: 20,
  numItersDecay: 0,
  iterations: 3000,
  logEvery: 10,
  sampleEvery: 100,
  checkpointEvery: 250,
});
`;
  const variantJson = {
    $schema: './node_modules/starspec/schema/spec.schema.json',
    extends: 'stargan-v1',
    set: { imageSize: 32, gConvDim: 16, dConvDim: 16, gRepeatNum: 3, dRepeatNum: 4, batchSize: 16, iterations: 2000, numItersDecay: 1000, lrUpdateStep: 100 },
  };
  const readme = `# ${name}

StarGAN variants as [starspec](https://www.npmjs.com/package/starspec) specs.

\`\`\`sh
npm install
npm run check        # both specs: decoding, settings, shapes, losses, schedule
npm run summary      # layers, output shapes, parameters and MACs
npm run settings     # every setting: type, default, doc
npm run train        # ${train}
npm run evaluate     # target-domain accuracy and content preservation of the run
npm run export       # the trained generator as ONNX
npm run typecheck    # the TypeScript spec against starspec's types
\`\`\`

- \`my-variant.ts\`: a spec in TypeScript (\`withDefaults\` of the built-in \`stargan-v1\`); the DSL
  (\`starspec/dsl\`) also builds networks and objectives from scratch.
- \`my-variant.json\`: the same kind of variant as JSON; \`$schema\` lets the editor check and
  complete its settings.

Any command takes \`--set key=value\` to try a setting without editing the file, and \`--help\`.
`;
  return [
    { path: 'package.json', text: `${JSON.stringify(pkg, null, 2)}\n` },
    { path: 'tsconfig.json', text: `${JSON.stringify(tsconfig, null, 2)}\n` },
    { path: 'my-variant.ts', text: variantTs },
    { path: 'my-variant.json', text: `${JSON.stringify(variantJson, null, 2)}\n` },
    { path: 'README.md', text: readme },
    { path: '.gitignore', text: 'node_modules/\nruns/\n*.onnx\n' },
  ];
};

/** Write the scaffold into `dir` (created if missing). Returns what was written. */
export const initProject = async (dir: string, version: string, force: boolean): Promise<Result<string>> => {
  const files = scaffold(packageName(dir), version);
  const present: string[] = [];
  for (const f of files) if (await stat(join(dir, f.path)).then(() => true, () => false)) present.push(f.path);
  if (present.length > 0 && !force)
    return E.left([specError(dir, `already has ${present.join(', ')}`, 'choose an empty or new folder, or pass --force to overwrite them')]);
  try {
    await mkdir(dir, { recursive: true });
    for (const f of files) await writeFile(join(dir, f.path), f.text);
  } catch (e) {
    return E.left([specError(dir, `cannot write the project: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)]);
  }
  const cd = resolve(dir) === process.cwd() ? '' : `cd ${dir} && `;
  return E.right(`wrote ${files.map((f) => f.path).join(', ')} in ${dir}; next: ${cd}npm install && npm run check`);
};
