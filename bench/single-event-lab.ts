/**
 * A lab script for durable single events (issue 24): scenario 1's load (50 connections, one
 * event per request, bench/scenarios/http-ingest.ts) into a new embedded `tally start`, and what
 * PostgreSQL does meanwhile: req/s, the batches the micro-batcher committed (calls of
 * tally.write_events) and their mean size, the time in tally.write_events and
 * tally.refresh_sessions (pg_stat_user_functions), and what the busy backends were doing
 * (pg_stat_activity sampled every 25 ms: CPU, or the wait event).
 *
 *   node bench/single-event-lab.ts [TALLY_MAX_INFLIGHT_BATCHES, default 1] [seconds, default 15]
 *
 * SETTING="name = value": a PostgreSQL setting (ALTER SYSTEM, reloaded) applied after the
 * warm-up, e.g. SETTING="synchronous_commit = off" to measure that trade-off. Run the variants
 * interleaved: absolute rates drift on a shared machine.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { findRunningEmbeddedPostgres } from '../src/store/embedded-postgres.ts';
import { findFreePort } from '../src/util/free-port.ts';
import { startService } from './lib/processes.ts';
import { singleEventLoad } from './scenarios/http-ingest.ts';

const inFlight = process.argv[2] ?? '1';
const seconds = Number(process.argv[3] ?? 15);
const setting = process.env.SETTING;

const dir = await mkdtemp(join(tmpdir(), 'tally-single-event-lab-'));
const dataDir = join(dir, 'embedded');
const port = await findFreePort();
const tally = await startService({
  name: 'tally start',
  args: ['start'],
  env: {
    SERVER_PORT: String(port),
    TALLY_GRPC_PORT: '0',
    TALLY_DATA_DIR: dataDir,
    TALLY_MAX_INFLIGHT_BATCHES: inFlight,
  },
  port,
});
const load = (duration: number) => singleEventLoad(tally.url, 50, duration);
const admin = new pg.Pool({
  connectionString: findRunningEmbeddedPostgres(dataDir)!.connectionString,
  max: 1,
});
try {
  await admin.query(`ALTER SYSTEM SET track_functions = 'pl'`);
  if (setting !== undefined) await admin.query(`ALTER SYSTEM SET ${setting}`);
  await admin.query('SELECT pg_reload_conf()');
  await load(5);
  await admin.query('SELECT pg_stat_reset()');
  const samples = new Map<string, number>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { rows } = await admin.query<{ w: string }>(
        `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w FROM pg_stat_activity
          WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
      );
      for (const r of rows) samples.set(r.w, (samples.get(r.w) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  const result = await load(seconds);
  sampling = false;
  await sampler;
  if (result.non2xx > 0 || result.errors > 0)
    throw new Error(`${result.non2xx} non-2xx answers and ${result.errors} errors under load`);
  await new Promise((resolve) => setTimeout(resolve, 700)); // the statistics' flush
  const { rows } = await admin.query<{ funcname: string; calls: string; total: number }>(
    `SELECT funcname, calls, total_time::float8 AS total FROM pg_stat_user_functions
      WHERE schemaname = 'tally' AND funcname IN ('write_events', 'refresh_sessions')`,
  );
  const fn = new Map(rows.map((r) => [r.funcname, r]));
  const batches = Number(fn.get('write_events')?.calls ?? 0);
  const requests = result.requests.total;
  const ms = (name: string) => (fn.get(name)?.total ?? 0) / Math.max(1, batches);
  console.log(
    `TALLY_MAX_INFLIGHT_BATCHES=${inFlight}${setting === undefined ? '' : `, ${setting}`}: ` +
      `${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms; ` +
      `${batches} batches of ${(requests / Math.max(1, batches)).toFixed(1)} events, ` +
      `per batch ${ms('write_events').toFixed(2)} ms in write_events, of it ${ms('refresh_sessions').toFixed(2)} ms in refresh_sessions`,
  );
  const total = [...samples.values()].reduce((a, b) => a + b, 0);
  console.log(
    `busy backends, ${total} samples: ` +
      [...samples]
        .sort((a, b) => b[1] - a[1])
        .map(([w, n]) => `${w} ${Math.round((100 * n) / total)} %`)
        .join(', '),
  );
} finally {
  await admin.end();
  await tally.stop();
  await rm(dir, { recursive: true, force: true });
}
