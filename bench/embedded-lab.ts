/**
 * A lab script for embedded mode's write path (docs/benchmarks.md, "Write throughput after issue
 * 20: the start of a new database"): scenario 4 of `npm run bench` alone (bench/scenarios/
 * embedded.ts's endToEndRate: batches of 100 from 16 connections into a new `tally start`, until
 * the summary counts them all), with a smaller event count if asked, then the time PostgreSQL
 * spent in tally.write_events and tally.refresh_sessions (pg_stat_user_functions) and the number
 * of batches the micro-batcher committed.
 *
 *   node bench/embedded-lab.ts [events, default 300000]
 *
 * EXPLAIN_MS=<ms>: auto_explain logs the plans of the statements (nested ones too) slower than
 * that, and the server log is kept (its path is printed). BENCH_NODE_ARGS as for `npm run bench`
 * (e.g. "--cpu-prof --cpu-prof-dir=scratch/prof" profiles `tally start`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { findRunningEmbeddedPostgres, startEmbeddedPostgres } from '../src/store/embedded-postgres.ts';
import { findFreePort } from '../src/util/free-port.ts';
import { startService } from './lib/processes.ts';
import type { BenchContext } from './run.ts';
import { endToEndRate } from './scenarios/embedded.ts';

const events = Number(process.argv[2] ?? 300_000);
const explainMs = process.env.EXPLAIN_MS === undefined ? undefined : Number(process.env.EXPLAIN_MS);
const dir = await mkdtemp(join(tmpdir(), 'tally-embedded-lab-'));
const dataDir = join(dir, 'embedded');
if (explainMs !== undefined) {
  // Set before `tally start` opens its pool: session_preload_libraries applies to new sessions.
  const server = await startEmbeddedPostgres({ dataDir });
  const client = new pg.Client({ connectionString: server.connectionString });
  await client.connect();
  for (const setting of [
    `session_preload_libraries = 'auto_explain'`,
    `auto_explain.log_min_duration = ${explainMs}`,
    'auto_explain.log_nested_statements = on',
    'auto_explain.log_analyze = on',
    'auto_explain.log_buffers = on',
    'log_autovacuum_min_duration = 0',
  ])
    await client.query(`ALTER SYSTEM SET ${setting}`);
  await client.end();
  await server.stop();
}
const port = await findFreePort();
const tally = await startService({
  name: 'tally start',
  args: ['start'],
  env: { SERVER_PORT: String(port), TALLY_GRPC_PORT: '0', TALLY_DATA_DIR: dataDir },
  port,
});
const admin = new pg.Client({ connectionString: findRunningEmbeddedPostgres(dataDir)!.connectionString });
try {
  await admin.connect();
  await admin.query(`ALTER SYSTEM SET track_functions = 'pl'`);
  await admin.query('SELECT pg_reload_conf()');
  const ctx = { connections: 50 } as BenchContext; // endToEndRate's 16 connections
  const rate = await endToEndRate(tally.url, tally.url, ctx, events, Date.parse('2020-01-01T00:00:00Z'));
  console.log(`${events} events: ${Math.round(rate)} events/s`);
  await new Promise((resolve) => setTimeout(resolve, 700)); // the statistics' flush
  const { rows } = await admin.query<{ funcname: string; calls: string; total: number }>(
    `SELECT funcname, calls, round(total_time)::float8 AS total
       FROM pg_stat_user_functions WHERE schemaname = 'tally' ORDER BY total_time DESC`,
  );
  for (const r of rows) console.log(`  ${r.funcname}: ${r.calls} calls, ${r.total} ms`);
  const metrics = await (await fetch(`${tally.url}/metrics`)).text();
  const batches = /^tally_batch_size_count (\d+)/m.exec(metrics)?.[1];
  console.log(`  batches committed: ${batches}`);
} finally {
  await admin.end();
  await tally.stop();
  if (explainMs === undefined) await rm(dir, { recursive: true, force: true });
  else console.log(`server log: ${dataDir}/pg/server.log`);
}
