import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

/**
 * True when `command args` runs and exits 0 on this machine; with 'on-path', when `command` is
 * found on PATH (for tools like wrk that have no option exiting 0). Suites that need an outside
 * tool (Java/Maven for Kafka, redis-server, chromium, promtool) call `requireTool` first: on a
 * laptop without the tool the suite skips with a loud reason; in CI
 * (`TALLY_REQUIRE_ALL_SUITES=1`) it fails. The benchmark does the same (bench/lib/tools.ts).
 */
export function toolAvailable(command: string, args: readonly string[] | 'on-path' = ['--version']): boolean {
  const result =
    args === 'on-path'
      ? spawnSync('sh', ['-c', 'command -v "$0"', command], { stdio: 'ignore' })
      : spawnSync(command, args, { stdio: 'ignore', timeout: 30_000 });
  return result.error === undefined && result.status === 0;
}

/** True in CI (`TALLY_REQUIRE_ALL_SUITES=1`): a missing tool fails instead of skipping. */
export function requireAllSuites(): boolean {
  return process.env.TALLY_REQUIRE_ALL_SUITES === '1';
}

/** Returns true when the test may go on; otherwise skips it (or throws in CI). */
export function requireTool(t: TestContext, command: string, why: string, args?: readonly string[]): boolean {
  if (toolAvailable(command, args)) return true;
  const reason = `SKIPPED: '${command}' is not installed (${why}); install it to run this suite`;
  if (requireAllSuites()) throw new Error(`${reason}; TALLY_REQUIRE_ALL_SUITES=1 forbids skipping`);
  process.stderr.write(`\n*** ${reason} ***\n\n`);
  t.skip(reason);
  return false;
}
