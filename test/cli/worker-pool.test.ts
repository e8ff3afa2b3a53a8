import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const FIXTURE = fileURLToPath(new URL('./fixtures/worker-pool-stop.ts', import.meta.url));

async function stopWith(mode: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [FIXTURE], {
    env: { ...process.env, FIXTURE_MODE: mode },
    timeout: 20_000,
  });
  return stdout.trim();
}

test('WorkerPool.stop resolves when every worker exits 0 on SIGTERM', async () => {
  assert.equal(await stopWith('clean'), 'stopped cleanly');
});

test('WorkerPool.stop rejects, naming each worker, when one exits non-zero or has to be killed', async () => {
  assert.match(
    await stopWith('fail'),
    /^rejected: fixture workers did not stop cleanly: pid \d+ exited 3; pid \d+ exited 3$/,
  );
  assert.match(
    await stopWith('hang'),
    /^rejected: fixture workers did not stop cleanly: pid \d+ killed after 500 ms; pid \d+ killed after 500 ms$/,
  );
});
