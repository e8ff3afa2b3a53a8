/**
 * Fills a Tally database with a large synthetic data set, server-side (generate_series), for the
 * query benchmark (bench/query-bench.ts):
 *
 *   node bench/dataset.ts [--events 10000000] [--days 30] [--users 20000] [--pages 200]
 *
 * Raw events spread evenly over the last `--days` days up to now (UTC), with deterministic
 * pseudo-random users, types and pages; then the minute/hour/day rollups derived from them
 * with the same SQL semantics as the batch writer (src/store/rollup-deltas.ts), then VACUUM
 * ANALYZE. It writes project `default` and replaces that project's rows: use a database of its own. The dedup
 * ledger is not filled (the benchmark only reads).
 *
 * Database: DATABASE_URL / DB_* as usual, else an embedded PostgreSQL in TALLY_DATA_DIR
 * (default .tally/bench-query, kept for reruns of the benchmark).
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadConfig } from '../src/config/load.ts';
import { openDatabase } from '../src/store/database.ts';
import { DAY as DAY_LEVEL, HOUR, MINUTE } from '../src/store/levels.ts';
import { dayStart, RawPartitions } from '../src/store/partitions.ts';

// The project a Tally without API keys serves, so a plain `tally query` on this database answers.
export const BENCH_PROJECT = 'default';
const DAY = 86_400_000;
const CHUNK = 1_000_000;

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '10000000' },
    days: { type: 'string', default: '30' },
    users: { type: 'string', default: '20000' },
    pages: { type: 'string', default: '200' },
  },
});
const events = Number(values.events);
const days = Number(values.days);
const users = Number(values.users);
const pages = Number(values.pages);

const config = loadConfig({ TALLY_DATA_DIR: '.tally/bench-query', TALLY_LOG_LEVEL: 'warn', ...process.env });
const logger = pino({ level: 'warn' });
const database = await openDatabase(config.database, {
  poolSize: 4,
  applicationName: 'tally-bench-dataset',
  logger,
});
// One session without the service's statement timeout, with memory for the big GROUP BYs.
const pool = await database.pool.connect();
await pool.query("SET statement_timeout = 0; SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'");

const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
async function step(name: string, sql: string, params: unknown[] = []) {
  const started = performance.now();
  const res = await pool.query(sql, params);
  log(`${name}: ${res.rowCount ?? 0} rows in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

try {
  const end = Math.floor(Date.now() / 60_000) * 60_000;
  const start = end - days * DAY;
  log(
    `${events} events, ${users} users, ${pages} pages over ${days} days up to ${new Date(end).toISOString()} (${database.description})`,
  );

  await pool.query('DELETE FROM tally.events WHERE project = $1', [BENCH_PROJECT]);
  for (const table of ['rollup_events', 'rollup_pages', 'rollup_minute_users', 'rollup_user_bits'])
    await pool.query(`DELETE FROM tally.${table} WHERE project = $1`, [BENCH_PROJECT]);
  const partitions = new RawPartitions(database.pool, undefined);
  const dayList: number[] = [];
  for (let d = dayStart(start); d < end; d += DAY) dayList.push(d);
  await partitions.ensure(dayList);

  // Event g: time spread evenly (plus jitter); user, page and type from a cheap integer hash of g,
  // so reruns produce the same data. About half are page views, one in ten has no page.
  for (let from = 1; from <= events; from += CHUNK) {
    const to = Math.min(events, from + CHUNK - 1);
    await step(
      `raw events ${from}-${to}`,
      `INSERT INTO tally.events (project, event_id, type, user_id, ts, received_at, page_url)
       SELECT $1, 'b-' || g, (ARRAY['page_view','page_view','page_view','page_view','page_view','click','click','user.login','signup','purchase'])[1 + (h % 10)],
              'u-' || ((h / 10) % $5), t, t,
              CASE WHEN h % 10 = 7 THEN NULL ELSE 'https://shop.example/p/' || ((h / 7) % $6) END
         FROM generate_series($2::int8, $3::int8) AS g,
              LATERAL (SELECT (g * 2654435761) % 4294967296 AS h) AS x,
              LATERAL (SELECT to_timestamp(($4::float8 + (g - 1) * $7::float8 + (h % 1000)) / 1000.0) AS t) AS y`,
      [BENCH_PROJECT, from, to, start, users, pages, (end - start - 1000) / events],
    );
  }

  const levels: [number, string][] = [
    [MINUTE.level, 'minute'],
    [HOUR.level, 'hour'],
    [DAY_LEVEL.level, 'day'],
  ];
  await step(
    'page numbers',
    `INSERT INTO tally.page_urls (page_url)
     SELECT DISTINCT page_url FROM tally.events WHERE project = $1 AND page_url IS NOT NULL ORDER BY 1
     ON CONFLICT (page_url) DO NOTHING`,
    [BENCH_PROJECT],
  );
  for (const [level, unit] of levels) {
    await step(
      `rollup_events ${unit}`,
      `INSERT INTO tally.rollup_events (project, level, bucket, type, count)
       SELECT project, $2::int2, date_trunc($3::text, ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', type, count(*)
         FROM tally.events WHERE project = $1 GROUP BY 1, 2, 3, 4`,
      [BENCH_PROJECT, level, unit],
    );
    await step(
      `rollup_pages ${unit}`,
      `INSERT INTO tally.rollup_pages (project, level, bucket, type, page_id, count)
       SELECT e.project, $2::int2, date_trunc($3::text, e.ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', e.type, d.id, count(*)
         FROM tally.events e JOIN tally.page_urls d ON d.page_url = e.page_url
        WHERE e.project = $1 GROUP BY 1, 2, 3, 4, 5`,
      [BENCH_PROJECT, level, unit],
    );
  }
  await step('user numbers, minute arrays and bit strings', 'SELECT tally.rebuild_user_sets($1)', [
    BENCH_PROJECT,
  ]);
  await step(
    'data version',
    `INSERT INTO tally.data_versions AS v (project, version) VALUES ($1, 1)
     ON CONFLICT (project) DO UPDATE SET version = v.version + 1`,
    [BENCH_PROJECT],
  );
  // Index-only scans need the visibility map; the planner needs statistics.
  for (const table of ['events', 'rollup_events', 'rollup_pages', 'rollup_minute_users', 'rollup_user_bits'])
    await step(`VACUUM ANALYZE ${table}`, `VACUUM ANALYZE tally.${table}`);
  const { rows } = await pool.query<{ table: string; size: string }>(
    `SELECT relname AS table, pg_size_pretty(pg_total_relation_size(c.oid)) AS size
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'tally' AND relname IN ('rollup_events', 'rollup_pages', 'page_urls', 'rollup_minute_users', 'rollup_user_bits')`,
  );
  log(`sizes: ${rows.map((r) => `${r.table} ${r.size}`).join(', ')}`);
} finally {
  pool.release();
  await database.stop();
}
