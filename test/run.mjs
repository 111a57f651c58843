#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's test runner under tsx (Node 20's --test cannot glob
// TypeScript files itself). Extra arguments filter files by substring: `npm test -- onnx`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const walk = (dir) =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.ts') ? [p] : [];
  });
const filters = process.argv.slice(2);
const files = walk(join(root, 'test'))
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(', ')}`);
  process.exit(1);
}
// Human-readable progress on stdout; TAP to a file for the closing 'N passed, N failed' line.
const tap = join(mkdtempSync(join(tmpdir(), 'starspec-test-')), 'results.tap');
const r = spawnSync(process.execPath, ['--conditions=starspec-source', '--import', 'tsx', '--test', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=8192' },
});
const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
const count = (k) => Number((text.match(new RegExp(`^# ${k} (\\d+)$`, 'm')) ?? [])[1] ?? 0);
const failed = count('fail') + count('cancelled');
console.log(`\n${count('pass')} passed, ${failed} failed, ${count('skipped')} skipped`);
process.exit(r.status ?? 1);
