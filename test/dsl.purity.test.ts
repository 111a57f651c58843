/** dsl/ is plain data and pure functions: no ML framework, no ONNX, no file system. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers/specs.ts';

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
