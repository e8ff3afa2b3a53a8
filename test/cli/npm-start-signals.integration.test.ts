import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findFreePort } from '../../src/util/free-port.ts';
import {
  isAlive,
  livingInGroup,
  portBound,
  postmasterRunning,
  stopLeftoverPostmaster,
  until,
} from '../helpers/process-group.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface NpmStart {
  /** The npm process (the one a process manager, an IDE or a terminal signals); leads its process group. */
  npmPid: number;
  /** The Tally node process npm started. */
  tallyPid: number;
  port: number;
  dataDir: string;
  output: () => string;
}

/** `npm start`, exactly as the README runs it, on a temporary data dir and free ports; waits for /health. */
async function npmStart(t: TestContext): Promise<NpmStart> {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-npm-start-'));
  const port = await findFreePort();
  // npm_* variables of an outer `npm test` must not leak in: npm sets its own.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));
  const npm = spawn('npm', ['start'], {
    cwd: ROOT,
    env: {
      ...env,
      TALLY_DATA_DIR: dataDir,
      SERVER_PORT: String(port),
      TALLY_GRPC_PORT: '0',
      TALLY_LOG_LEVEL: 'info',
    },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  npm.stdout.on('data', (c: Buffer) => (out += c.toString()));
  npm.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const npmPid = npm.pid!;
  t.after(async () => {
    for (const pid of livingInGroup(npmPid)) process.kill(pid, 'SIGKILL');
    await stopLeftoverPostmaster(dataDir);
    await rm(dataDir, { recursive: true, force: true });
  });
  await until(
    '/health',
    async () => {
      if (npm.exitCode !== null) throw new Error(`npm start exited early (${npm.exitCode}):\n${out}`);
      return fetch(`http://127.0.0.1:${port}/health`).then(
        (res) => res.ok,
        () => false,
      );
    },
    90_000,
  );
  // Tally's own log lines carry its pid.
  const tallyPid = (
    JSON.parse(out.split('\n').find((l) => l.startsWith('{"level"')) ?? '{}') as { pid?: number }
  ).pid;
  assert.ok(tallyPid !== undefined && tallyPid !== npmPid, `Tally's pid in its logs:\n${out}`);
  return { npmPid, tallyPid, port, dataDir, output: () => out };
}

/** Tally stopped the way its shutdown does: logged "stopped", exited, released its port and its PostgreSQL. */
async function assertStoppedCleanly(run: NpmStart, signal: string, reason: string) {
  await until(`Tally to exit after ${signal}`, () => !isAlive(run.tallyPid), 45_000);
  assert.ok(
    run.output().includes(`"reason":"${reason}","msg":"shutting down"`),
    `shutting down (${reason}):\n${run.output()}`,
  );
  assert.match(run.output(), /"msg":"stopped"/);
  assert.equal(postmasterRunning(run.dataDir), false, 'embedded PostgreSQL stopped');
  assert.equal(await portBound(run.port), false, 'SERVER_PORT released');
  await until(
    'npm and everything it started to be gone',
    () => livingInGroup(run.npmPid).length === 0,
    10_000,
  );
}

test('npm start, SIGTERM to the npm process (a process manager, an IDE): Tally stops cleanly, nothing orphaned', async (t) => {
  const run = await npmStart(t);
  process.kill(run.npmPid, 'SIGTERM');
  // npm hands SIGTERM to `sh -c`, which dies without passing it on: Tally sees npm go.
  await assertStoppedCleanly(run, 'SIGTERM', 'npm exited');
});

test('npm start, SIGHUP to its process group (a closed terminal): Tally stops cleanly, PostgreSQL too', async (t) => {
  const run = await npmStart(t);
  process.kill(-run.npmPid, 'SIGHUP');
  await assertStoppedCleanly(run, 'SIGHUP', 'SIGHUP');
});

test('npm start, SIGHUP to the npm process alone (npm does not forward it): Tally still stops cleanly', async (t) => {
  const run = await npmStart(t);
  process.kill(run.npmPid, 'SIGHUP');
  await assertStoppedCleanly(run, 'SIGHUP', 'npm exited');
});
