import { spawnSync } from 'node:child_process';

/**
 * True when `command args` runs and exits 0 on this machine; with 'on-path', when `command` is
 * found on PATH (for tools like wrk that have no option exiting 0).
 */
export function toolAvailable(command: string, args: readonly string[] | 'on-path' = ['--version']): boolean {
  const result =
    args === 'on-path'
      ? spawnSync('sh', ['-c', 'command -v "$0"', command], { stdio: 'ignore' })
      : spawnSync(command, args, { stdio: 'ignore', timeout: 30_000 });
  return result.error === undefined && result.status === 0;
}

/**
 * The scenarios that need an outside tool (Java/Maven for Kafka, redis-server) call this first.
 * Missing tool: a loud line and false (the scenario is skipped), or, in CI
 * (`TALLY_REQUIRE_ALL_SUITES=1`), an error, so a CI run cannot silently measure less.
 */
export function requireTool(
  command: string,
  why: string,
  log: (line: string) => void,
  args?: readonly string[] | 'on-path',
): boolean {
  if (toolAvailable(command, args)) return true;
  const reason = `SKIPPED: '${command}' is not installed (${why})`;
  if (process.env.TALLY_REQUIRE_ALL_SUITES === '1')
    throw new Error(`${reason}; TALLY_REQUIRE_ALL_SUITES=1 forbids skipping`);
  log(`\n*** ${reason}; install it to run these scenarios ***\n`);
  return false;
}
