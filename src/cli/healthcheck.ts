/**
 * Container HEALTHCHECK: GET /health on the port of the role this container runs, with
 * Node's own fetch (the slim image has no curl). Exit 0 when healthy, 1 otherwise.
 *
 * The role is read from PID 1's command line (`tally ingest|process|query|start`), so one
 * image and one HEALTHCHECK serve every role; the port comes from the same variables the
 * role listens on (src/config/schema.ts), with the same defaults.
 */
import { readFileSync } from 'node:fs';

const ROLE_PORT: Record<string, () => string> = {
  start: () => process.env.SERVER_PORT || '8080',
  ingest: () => process.env.SERVER_PORT || '8080',
  query: () => process.env.TALLY_QUERY_PORT || '8081',
  process: () => process.env.METRICS_PORT || '9090',
};

function role(): string {
  try {
    const args = readFileSync('/proc/1/cmdline', 'utf8').split('\0');
    return args.find((a) => a in ROLE_PORT) ?? 'start';
  } catch {
    return 'start';
  }
}

const port = ROLE_PORT[role()]();
try {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2500) });
  process.exitCode = res.ok ? 0 : 1;
} catch {
  process.exitCode = 1;
}
