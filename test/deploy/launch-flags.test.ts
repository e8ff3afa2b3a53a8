import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TALLY_V8_FLAGS } from '../../src/cli/v8-flags.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8');
const flags = TALLY_V8_FLAGS.join(' ');

test('every launcher of Tally gives node the V8 flags of src/cli/v8-flags.ts', () => {
  const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
  for (const name of ['start', 'tally'])
    assert.ok(scripts[name].startsWith(`node ${flags} src/cli/main.ts`), name);
  assert.equal(read('bin/tally.js').split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
  const entrypoint = /^ENTRYPOINT (.*)$/m.exec(read('Dockerfile'))?.[1];
  assert.deepEqual(JSON.parse(entrypoint ?? '[]'), ['node', ...TALLY_V8_FLAGS, 'bin/tally.js']);
});

test('this node accepts the flags (a flag it did not know would stop every launch)', () => {
  const run = spawnSync(process.execPath, [...TALLY_V8_FLAGS, '-e', 'process.exit(0)'], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stderr, '');
});
