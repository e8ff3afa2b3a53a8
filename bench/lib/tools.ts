import { requireAllSuites, toolAvailable } from '../../test/helpers/require-tool.ts';

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
  if (requireAllSuites()) throw new Error(`${reason}; TALLY_REQUIRE_ALL_SUITES=1 forbids skipping`);
  log(`\n*** ${reason}; install it to run these scenarios ***\n`);
  return false;
}
