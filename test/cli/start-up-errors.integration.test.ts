import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findFreePort } from '../../src/util/free-port.ts';
import {
  holdPort,
  livingInGroup,
  portBound,
  postmasterRunning,
  runToExit,
  stopLeftoverPostmaster,
  until,
} from '../helpers/process-group.ts';
import { assertCleanFailure, MAIN, tallyToExit } from '../helpers/start-up-failure.ts';

test('tally start: SERVER_PORT in use → one line naming SERVER_PORT, exit 2, nothing left running', async (t) => {
  const busy = await holdPort(t);
  const grpc = await findFreePort();
  const run = await tallyToExit(t, 'start', { SERVER_PORT: String(busy), TALLY_GRPC_PORT: String(grpc) });
  await assertCleanFailure(run, 'SERVER_PORT', [grpc]);
  assert.match(run.stderr, new RegExp(`port ${busy} \\(SERVER_PORT\\) is already in use`));
});

test('tally start: TALLY_GRPC_PORT (50051 by default) in use → one line naming it, the API port released', async (t) => {
  const busy = await holdPort(t);
  const api = await findFreePort();
  const run = await tallyToExit(t, 'start', { SERVER_PORT: String(api), TALLY_GRPC_PORT: String(busy) });
  await assertCleanFailure(run, 'TALLY_GRPC_PORT', [api]);
  assert.ok(!run.stderr.includes('No address added'), 'grpc-js writes nothing to stderr itself');
});

test('tally start: a TallyError at start-up (open API on 0.0.0.0) → its one line, embedded PostgreSQL stopped', async (t) => {
  const api = await findFreePort();
  const run = await tallyToExit(t, 'start', {
    SERVER_PORT: String(api),
    TALLY_GRPC_PORT: '0',
    TALLY_HOST: '0.0.0.0',
  });
  await assertCleanFailure(run, 'TALLY_ALLOW_UNAUTHENTICATED', [api]);
});

test('tally query: TALLY_QUERY_PORT in use → one line naming it, nothing left running', async (t) => {
  const busy = await holdPort(t);
  const grpc = await findFreePort();
  const run = await tallyToExit(t, 'query', {
    TALLY_QUERY_PORT: String(busy),
    TALLY_GRPC_PORT: String(grpc),
  });
  await assertCleanFailure(run, 'TALLY_QUERY_PORT', [grpc]);
});

test('tally query: TALLY_GRPC_PORT in use → one line naming it, nothing left running', async (t) => {
  const busy = await holdPort(t);
  const api = await findFreePort();
  const run = await tallyToExit(t, 'query', { TALLY_QUERY_PORT: String(api), TALLY_GRPC_PORT: String(busy) });
  await assertCleanFailure(run, 'TALLY_GRPC_PORT', [api]);
});

/**
 * `tally start` in its own process group on a temporary data dir and a free API port, its output
 * collected; whatever it leaves (processes, PostgreSQL, the directory) is removed after the test.
 */
async function startInBackground(t: TestContext, prefix: string, env: Record<string, string> = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), prefix));
  t.after(async () => {
    await stopLeftoverPostmaster(dataDir);
    await rm(dataDir, { recursive: true, force: true });
  });
  const port = await findFreePort();
  const child = spawn(process.execPath, [MAIN, 'start'], {
    env: {
      ...process.env,
      TALLY_DATA_DIR: dataDir,
      SERVER_PORT: String(port),
      TALLY_GRPC_PORT: '0',
      TALLY_LOG_LEVEL: 'info',
      ...env,
    },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.after(() => {
    for (const pid of livingInGroup(child.pid!)) process.kill(pid, 'SIGKILL');
  });
  return { child, dataDir, port, closed, output: () => out };
}

test('tally start: SIGTERM during start-up (embedded PostgreSQL being created) stops it once up, nothing left', async (t) => {
  const { child, dataDir, port, closed, output } = await startInBackground(t, 'tally-start-up-sigterm-');
  // initdb takes seconds: the signal lands well before the servers listen.
  await until('initdb to begin', () => output().includes('creating a new PostgreSQL cluster'), 60_000);
  child.kill('SIGTERM');
  assert.equal(await closed, 0, output());
  assert.match(output(), /"reason":"SIGTERM","msg":"shutting down"/);
  assert.match(output(), /"msg":"stopped"/);
  assert.equal(postmasterRunning(dataDir), false, 'embedded PostgreSQL stopped');
  assert.deepEqual(livingInGroup(child.pid!), []);
  assert.equal(await portBound(port), false);
});

test('tally start waiting for an unreachable Kafka: SIGINT gives up the wait and stops it well inside the deadline, nothing left', async (t) => {
  // A free port nobody listens on: the broker "is not reachable yet" for as long as we like.
  const kafkaPort = await findFreePort();
  const { child, dataDir, closed, output } = await startInBackground(t, 'tally-start-up-kafka-wait-', {
    KAFKA_BROKERS: `127.0.0.1:${kafkaPort}`,
  });
  await until('the wait for Kafka', () => output().includes('is not reachable yet; retrying'), 90_000);
  assert.equal(postmasterRunning(dataDir), true, 'the embedded PostgreSQL is up while it waits');
  child.kill('SIGINT');
  const code = await closed;
  // 0: stopped by the signal; 2: the abandoned start reported in one line. Never the 28 s
  // deadline's exit 1, which would leave the embedded PostgreSQL running.
  assert.ok(code === 0 || code === 2, `exit ${code}\n${output()}`);
  assert.doesNotMatch(output(), /shutdown took too long/);
  assert.equal(postmasterRunning(dataDir), false, 'embedded PostgreSQL stopped');
  assert.deepEqual(livingInGroup(child.pid!), []);
});

test('tally --version and npm run tally -- --version print the package version', async () => {
  const { version } = (await import('../../package.json', { with: { type: 'json' } })).default as {
    version: string;
  };
  const direct = await runToExit(process.execPath, [MAIN, '--version'], { timeoutMs: 30_000 });
  assert.equal(direct.code, 0);
  assert.equal(direct.stdout, `${version}\n`);
  const viaNpm = await runToExit('npm', ['run', '--silent', 'tally', '--', '--version'], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    timeoutMs: 60_000,
  });
  assert.equal(viaNpm.code, 0, viaNpm.stderr);
  assert.equal(viaNpm.stdout, `${version}\n`);
});
