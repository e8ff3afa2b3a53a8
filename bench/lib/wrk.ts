import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const SCRIPT = fileURLToPath(new URL('./wrk-round-robin.lua', import.meta.url));

export interface Latencies {
  requests: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Latency of GETs one at a time (one wrk thread, one keep-alive connection) for `seconds`,
 * taking `paths` in turn. wrk is a C load generator: in the harness's own fetch client, garbage
 * collection pauses of up to ~10 ms made a p99 of 3–4 ms for a bare Fastify app.
 */
export async function sequentialGets(
  base: string,
  paths: readonly string[],
  seconds: number,
): Promise<Latencies> {
  const { stdout } = await promisify(execFile)(
    'wrk',
    ['-t1', '-c1', `-d${seconds}s`, '--timeout', '10s', '-s', SCRIPT, base, '--', ...paths],
    { timeout: (seconds + 30) * 1000 },
  );
  const line = stdout.split('\n').find((l) => l.startsWith('{"requests"'));
  if (line === undefined) throw new Error(`wrk printed no result:\n${stdout}`);
  const r = JSON.parse(line) as {
    requests: number;
    p50: number;
    p99: number;
    max: number;
    errors: number;
    non2xx: number;
  };
  if (r.errors > 0 || r.non2xx > 0)
    throw new Error(`wrk ${base}: ${r.non2xx} non-2xx answers and ${r.errors} errors`);
  return { requests: r.requests, p50Ms: r.p50 / 1000, p99Ms: r.p99 / 1000, maxMs: r.max / 1000 };
}
