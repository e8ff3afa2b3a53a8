/**
 * A lab script for the write path (docs/benchmarks.md, "Write throughput after issue 20"): feeds
 * one BatchWriter, raw storage on, with batches of the processor's size into an embedded
 * PostgreSQL of its own, and prints the time per batch as the data grows, and the time PostgreSQL
 * spent in tally.write_events and in tally.refresh_sessions (pg_stat_user_functions).
 *
 *   node bench/write-profile.ts [bench|web|single] [batches] [batch size]
 *
 * `bench`: the events of bench scenarios 3 and 4 (bench/lib/events.ts: 5,000 users in turn, one
 * event a millisecond, so every user's visit lasts the whole run); `web`: bench/web-dataset.ts
 * (visits of ~3 events, minutes long); `single`: scenario 1's events (benchEvent, each at a random instant
 * of one hour, 5,000 users in turn) in the small batches the micro-batcher of `tally start` commits
 * under its load (about 25). TOMBSTONES=n: n deleted users (hashes of no user of the
 * data) in the project written, so every batch takes the tombstone check's slow path (migration
 * 021) and drops nothing. PGSS=1: the statements inside the functions too, each with its calls,
 * planning and execution time (pg_stat_statements, preloaded by a restart of the server).
 * SQL="…": one statement run after the migrations, e.g. a table setting to try.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TallyEvent } from '../src/event/types.ts';
import { BatchWriter } from '../src/store/batch-writer.ts';
import { FirstStatistics } from '../src/store/first-statistics.ts';
import { startEmbeddedPostgres } from '../src/store/embedded-postgres.ts';
import { migrate } from '../src/store/migrate.ts';
import { RawPartitions } from '../src/store/partitions.ts';
import { benchBatch, benchEvent } from './lib/events.ts';
import { WebDataset } from './web-dataset.ts';

const [kind = 'bench', batchesArg = '60', sizeArg = '2000'] = process.argv.slice(2);
const batches = Number(batchesArg);
const size = Number(sizeArg);
const WINDOW = Date.parse('2019-06-01T00:00:00Z');

function* input(): Generator<TallyEvent[]> {
  if (kind === 'web') {
    const end = Math.floor(Date.now() / 60_000) * 60_000;
    yield* new WebDataset({ events: batches * size, end, days: 1, seed: 7 }).batches(size);
    return;
  }
  const events =
    kind === 'single'
      ? Array.from({ length: batches * size }, () =>
          benchEvent(WINDOW + Math.floor(Math.random() * 3_600_000)),
        )
      : benchBatch(batches * size, WINDOW, 86_400_000);
  for (let i = 0; i < events.length; i += size) {
    yield events.slice(i, i + size).map((e) => ({
      project: 'bench',
      eventId: e.event_id as string,
      type: e.type as string,
      userId: e.user_id as string,
      ts: e.timestamp as number,
      receivedAt: e.timestamp as number,
      pageUrl: e.page_url as string,
      referrer: e.referrer as string,
      sessionId: null,
      userAgent: null,
      country: null,
      service: null,
      properties: null,
    }));
  }
}

const dataDir = await mkdtemp(join(tmpdir(), 'tally-write-profile-'));
const pgss = process.env.PGSS !== undefined;
let server = await startEmbeddedPostgres({ dataDir });
if (pgss) {
  const client = new pg.Client({ connectionString: server.connectionString });
  await client.connect();
  await client.query(`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`);
  await client.query(`ALTER SYSTEM SET pg_stat_statements.track = 'all'`);
  await client.query(`ALTER SYSTEM SET pg_stat_statements.track_planning = on`);
  await client.end();
  await server.stop();
  server = await startEmbeddedPostgres({ dataDir });
}
const admin = new pg.Pool({ connectionString: server.connectionString, max: 1 });
// The writer's own connections, opened after the settings below (session_preload_libraries).
let pool: pg.Pool | undefined;
try {
  await migrate(admin);
  if (process.env.SQL !== undefined) await admin.query(process.env.SQL);
  const tombstones = Number(process.env.TOMBSTONES ?? 0);
  if (tombstones > 0) {
    await admin.query(
      `INSERT INTO tally.user_tombstones (project, user_hash)
       SELECT $1, decode(md5(i::text) || md5((-i)::text), 'hex') FROM generate_series(1, $2::int) AS i`,
      [kind === 'web' ? 'default' : 'bench', tombstones],
    );
  }
  await admin.query(`ALTER SYSTEM SET track_functions = 'pl'`);
  if (process.env.EXPLAIN !== undefined) {
    // The plans of the statements inside the functions, with their timings, in the server log.
    await admin.query(`ALTER SYSTEM SET session_preload_libraries = 'auto_explain'`);
    await admin.query(`ALTER SYSTEM SET auto_explain.log_min_duration = ${Number(process.env.EXPLAIN)}`);
    await admin.query(`ALTER SYSTEM SET auto_explain.log_nested_statements = on`);
    await admin.query(`ALTER SYSTEM SET auto_explain.log_analyze = on`);
    await admin.query(`ALTER SYSTEM SET auto_explain.log_buffers = on`);
  }
  await admin.query('SELECT pg_reload_conf()');
  await admin.query('SELECT pg_stat_reset()');
  if (pgss) {
    await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await admin.query('SELECT pg_stat_statements_reset()');
  }
  pool = new pg.Pool({ connectionString: server.connectionString, max: 2 });
  // As the services do (src/cli): the tables' first statistics as soon as they have rows.
  const statistics = new FirstStatistics(pool, (err) => console.error('first statistics failed', err));
  const writer = new BatchWriter({
    pool,
    partitions: new RawPartitions(pool, undefined),
    storeRaw: true,
    statistics,
  });
  const times: number[] = [];
  let events = 0;
  const started = performance.now();
  for (const batch of input()) {
    const t0 = performance.now();
    await writer.write({ events: batch });
    times.push(performance.now() - t0);
    events += batch.length;
  }
  const seconds = (performance.now() - started) / 1000;
  const tenth = Math.max(1, Math.floor(times.length / 10));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(
    `${kind}: ${events} events in ${times.length} batches of ${size}: ${Math.round(events / seconds)} events/s`,
  );
  console.log(
    `ms per batch, first tenth ${mean(times.slice(0, tenth)).toFixed(0)}, last tenth ${mean(times.slice(-tenth)).toFixed(0)}`,
  );
  await new Promise((r) => setTimeout(r, 600)); // the statistics collector's flush
  const { rows } = await admin.query<{ funcname: string; calls: string; total: number; self: number }>(
    `SELECT funcname, calls, round(total_time)::float8 AS total, round(self_time)::float8 AS self
       FROM pg_stat_user_functions WHERE schemaname = 'tally' ORDER BY total_time DESC`,
  );
  for (const r of rows)
    console.log(`  ${r.funcname}: ${r.calls} calls, total ${r.total} ms, self ${r.self} ms`);
  if (pgss) {
    const statements = await admin.query<{ calls: string; plan: number; exec: number; query: string }>(
      `SELECT calls, round(total_plan_time)::float8 AS plan, round(total_exec_time)::float8 AS exec,
              regexp_replace(left(query, 100), '\\s+', ' ', 'g') AS query
         FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'
        ORDER BY total_plan_time + total_exec_time DESC LIMIT 20`,
    );
    console.log('  statements (calls, planning ms, execution ms; a function call includes its statements):');
    for (const r of statements.rows) console.log(`    ${r.calls}  ${r.plan}  ${r.exec}  ${r.query}`);
  }
} finally {
  await pool?.end();
  await admin.end();
  await server.stop();
  if (process.env.EXPLAIN !== undefined) console.log(`server log: ${dataDir}/pg/server.log`);
  else await rm(dataDir, { recursive: true, force: true });
}
