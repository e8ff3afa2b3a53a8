import assert from 'node:assert/strict';
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
  type Finished,
} from '../helpers/process-group.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** Runs `tally <role>` to its exit with an embedded PostgreSQL in a fresh data directory. */
export async function tallyToExit(
  t: TestContext,
  role: string,
  env: Record<string, string>,
): Promise<Finished & { pid: number; dataDir: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), `tally-start-up-${role}-`));
  t.after(async () => {
    await stopLeftoverPostmaster(dataDir);
    await rm(dataDir, { recursive: true, force: true });
  });
  const run = await runToExit(process.execPath, [MAIN, role], {
    env: { ...process.env, TALLY_DATA_DIR: dataDir, TALLY_LOG_LEVEL: 'info', ...env },
  });
  return { ...run, dataDir };
}

/**
 * What every start-up failure must look like: non-zero exit, exactly one line on stderr that
 * names the setting (no stack trace), and nothing left: no process of its group, no embedded
 * PostgreSQL, none of the given ports still bound.
 */
export async function assertCleanFailure(
  run: Finished & { pid: number; dataDir?: string },
  setting: string,
  freedPorts: number[] = [],
): Promise<void> {
  assert.notEqual(run.code, 0, `exit code; stderr:\n${run.stderr}`);
  assert.equal(run.code, 2, `exit code; stderr:\n${run.stderr}`);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${run.stderr}`);
  assert.match(lines[0], /^tally: /);
  assert.ok(lines[0].includes(setting), `stderr names ${setting}: ${lines[0]}`);
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  assert.ok(
    !run.stdout.includes('Server listening'),
    `"Server listening" logged before failing:\n${run.stdout}`,
  );
  assert.deepEqual(livingInGroup(run.pid), [], 'no process of the role left running');
  if (run.dataDir !== undefined)
    assert.equal(postmasterRunning(run.dataDir), false, 'embedded PostgreSQL stopped');
  for (const port of freedPorts) assert.equal(await portBound(port), false, `port ${port} released`);
}

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
