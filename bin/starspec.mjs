#!/usr/bin/env node
// The starspec command. From the package: the compiled CLI in dist/ (plain JavaScript, no loader).
// From a checkout of the repository (cli/main.ts is there, dist/ need not be): the TypeScript
// sources through tsx, a devDependency, so a clean clone runs right after `npm ci`.
import { existsSync } from 'node:fs';

const sources = new URL('../cli/main.ts', import.meta.url);
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(sources.href);
} else {
  await import('../dist/cli/main.js');
}
