import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from './poll.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FILES = ['test/helpers/fixtures/interrupted-a.ts', 'test/helpers/fixtures/interrupted-b.ts'];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Runs the fixture files with `runner` in a process group of their own, sends SIGINT to
 * `target` once the first file has started its services, and returns what the run printed.
 */
async function interruptedRun(t: TestContext, runner: string[], target: 'group' | 'runner') {
  const out = mkdtempSync(join(tmpdir(), 'tally-interrupt-'));
  const started = join(out, 'started.json');
  const child = spawn(process.execPath, [...runner, ...FILES], {
    cwd: ROOT,
    detached: true,
    // Without NODE_TEST_CONTEXT, which would make the runner report to this test process.
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, TALLY_FIXTURE_OUT: started },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let fixture: { dataDir: string; pids: number[] } | undefined;
  t.after(() => {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    for (const pid of fixture?.pids ?? []) if (alive(pid)) process.kill(pid, 'SIGKILL');
    if (fixture) rmSync(fixture.dataDir, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  });

  await waitFor(
    'the fixture to start its services',
    () => {
      if (child.exitCode !== null) throw new Error(`the run ended first (${child.exitCode}):\n${output}`);
      // The fixture may be between creating the file and writing it: whole JSON, or not yet.
      try {
        fixture = JSON.parse(readFileSync(started, 'utf8')) as { dataDir: string; pids: number[] };
        return true;
      } catch {
        return false;
      }
    },
    120_000,
    100,
  );
  if (fixture === undefined) throw new Error('waitFor returned before the fixture was read');
  assert.ok(fixture.pids.every(alive));
  // Ctrl-C in a terminal signals the whole foreground process group; `kill -INT` just the runner.
  process.kill(target === 'group' ? -child.pid! : child.pid!, 'SIGINT');
  let code: number | null | undefined;
  void exited.then((c) => (code = c));
  await waitFor('the run to end', () => code !== undefined, 60_000, 100);
  return { code, output, fixture };
}

for (const target of ['group', 'runner'] as const) {
  test(`Ctrl-C (SIGINT to the ${target}): one message, exit 130, nothing left running`, async (t) => {
    const { code, output, fixture } = await interruptedRun(t, ['test/helpers/run-tests.ts'], target);
    assert.equal(code, 130, output);
    assert.doesNotMatch(output, /still pending/, output);
    assert.equal(output.match(/Interrupted/g)?.length, 1, output);
    assert.match(
      output,
      /✖ Interrupted by SIGINT during test\/helpers\/fixtures\/interrupted-a\.ts: stopped it and what it started; 1 of 2 test files did not run\.\n$/,
    );
    assert.deepEqual(
      fixture.pids.filter(alive),
      [],
      'PostgreSQL, the registered child and the stray child are stopped',
    );
    assert.equal(existsSync(fixture.dataDir), false, 'the data directory is removed');
  });
}
