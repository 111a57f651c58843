/**
 * dsl/ is plain data and pure functions: no ML framework, no ONNX, no file system. Interpreters
 * fold over that data on their own: none imports another (shared walking code lives in dsl/).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers/specs.ts';

/** Static and dynamic import specifiers of a module's source. */
const importsIn = (src: string): string[] => [...src.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);

const tsFiles = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });

test('dsl/ and specs/ import no framework, no onnx, no file system', () => {
  for (const dir of ['dsl', 'specs']) {
    for (const f of readdirSync(join(repoRoot, dir)).filter((x) => x.endsWith('.ts'))) {
      const src = readFileSync(join(repoRoot, dir, f), 'utf8');
      const imports = [...src.matchAll(/from\s+['"]([^'"]+)['"]/g)].map((m) => m[1]!);
      for (const i of imports) {
        assert.ok(
          i.startsWith('.') || i.startsWith('fp-ts') || i === 'io-ts',
          `${dir}/${f} imports ${i}: only fp-ts, io-ts and other dsl/spec modules are allowed`,
        );
        assert.ok(!i.includes('interpreters') && !i.includes('/io/') && !i.includes('/cli/'), `${dir}/${f} imports ${i}`);
      }
    }
  }
});

test('metrics/ is pure math: only ml-matrix (linear algebra) and its own modules, no framework, no files', () => {
  for (const f of tsFiles(join(repoRoot, 'metrics')))
    for (const i of importsIn(readFileSync(f, 'utf8')))
      assert.ok(i === 'ml-matrix' || (i.startsWith('./') && !i.includes('..')), `${relative(repoRoot, f)} imports ${i}`);
});

test('the loss chart (api/plot.ts) is pure: SVG text from numbers, no imports', () => {
  assert.deepEqual(importsIn(readFileSync(join(repoRoot, 'api', 'plot.ts'), 'utf8')), []);
});

/** `interpreters/X/...` -> X; other paths -> null. */
const interpreterOf = (file: string): string | null => {
  const parts = relative(join(repoRoot, 'interpreters'), file).split(sep);
  return parts.length > 1 && parts[0] !== '..' ? parts[0]! : null;
};

/** The relative imports of `file` (source `src`) that land in another interpreter's folder. */
const crossings = (file: string, src: string): string[] => {
  const own = interpreterOf(file);
  return importsIn(src).filter((i) => {
    if (!i.startsWith('.')) return false;
    const target = interpreterOf(resolve(dirname(file), i));
    return target !== null && target !== own;
  });
};

test('no interpreter imports another (interpreters/X/** never imports interpreters/Y/**)', () => {
  const files = tsFiles(join(repoRoot, 'interpreters'));
  const interpreters = new Set(files.map(interpreterOf));
  assert.ok(interpreters.size >= 4, `found interpreters ${[...interpreters].join(', ')}`);
  for (const f of files) {
    const bad = crossings(f, readFileSync(f, 'utf8'));
    assert.deepEqual(bad, [], `${relative(repoRoot, f)} imports another interpreter: ${bad.join(', ')}`);
  }
  // The check sees a crossing (static or dynamic) and lets dsl/, io/ and the interpreter's own files through.
  const probe = join(repoRoot, 'interpreters', 'onnx', 'probe.ts');
  const src = [
    `import { compileNetwork } from '../tfjs/forward.ts';`,
    `const m = await import('../diagram/dot.ts');`,
    `import { refsOf } from '../../dsl/walk.ts';`,
    `import type { HostTensor } from '../../io/tensor.ts';`,
    `import { emitNetwork } from './emit.ts';`,
  ].join('\n');
  assert.deepEqual(crossings(probe, src), ['../tfjs/forward.ts', '../diagram/dot.ts']);
});
