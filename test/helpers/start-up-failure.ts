import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  livingInGroup,
  portBound,
  postmasterRunning,
  runToExit,
  stopLeftoverPostmaster,
  type Finished,
} from './process-group.ts';

export const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

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
  exitCode = 2,
): Promise<void> {
  assert.equal(run.code, exitCode, `exit code; stderr:\n${run.stderr}`);
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
