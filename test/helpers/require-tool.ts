import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

/**
 * True when `command` runs on this machine. Suites that need an outside tool (Java/Maven for
 * Kafka, redis-server, chromium, promtool) call `requireTool` first: on a laptop without the
 * tool the suite skips with a loud reason; in CI (`TALLY_REQUIRE_ALL_SUITES=1`) it fails.
 */
export function toolAvailable(command: string, args: readonly string[] = ['--version']): boolean {
  const result = spawnSync(command, args, { stdio: 'ignore', timeout: 20_000 });
  return result.error === undefined && result.status === 0;
}

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
