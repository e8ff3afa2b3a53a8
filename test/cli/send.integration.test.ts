import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { getJson, startTestTally } from '../helpers/embedded-tally.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const run = promisify(execFile);

test('tally send 100 plays seed 000 test-producer.sh: 100 events accepted and counted', async (t) => {
  const tally = await startTestTally(t);
  const { stdout } = await run(process.execPath, [MAIN, 'send', '100', '--url', tally.url, '--rate', '500']);
  assert.match(stdout, /^accepted: 100$/m);
  assert.match(stdout, /^dropped \(user deleted\): 0$/m);
  assert.match(stdout, /^failed: 0$/m);
  const summary = await getJson<{ events: number }>(`${tally.url}/v1/stats/summary`);
  assert.equal(summary.body.events, 100);
});

test('tally send reports a Tally that is not there, and exits 1', async () => {
  const result = await run(process.execPath, [MAIN, 'send', '3', '--url', 'http://127.0.0.1:9'], {}).then(
    () => ({ code: 0, stdout: '' }),
    (err: { code: number; stdout: string }) => err,
  );
  assert.equal(result.code, 1);
  assert.match(result.stdout, /^failed: 3$/m);
});

test('tally send rejects a bad count', async () => {
  const result = await run(process.execPath, [MAIN, 'send', 'ten']).then(
    () => ({ code: 0, stderr: '' }),
    (err: { code: number; stderr: string }) => err,
  );
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /count must be a positive integer/);
});
