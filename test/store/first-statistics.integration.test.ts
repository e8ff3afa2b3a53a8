import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import pg from 'pg';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { FIRST_STATISTICS_MIN_ROWS, FirstStatistics } from '../../src/store/first-statistics.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { toTallyEvent } from '../helpers/oracle.ts';

const analyzed = async (pool: pg.Pool, table: string): Promise<boolean> => {
  const { rows } = await pool.query<{ at: Date | null }>(
    `SELECT coalesce(last_analyze, last_autoanalyze) AS at FROM pg_stat_user_tables WHERE relid = to_regclass($1)`,
    [table],
  );
  return rows.length === 1 && rows[0].at !== null;
};

test('the tables written with no statistics yet are analyzed once, from the threshold on', async (t) => {
  const db = await startTestPostgres(t);
  // One connection: its statistics are flushed on request before FirstStatistics reads them.
  const pool = new pg.Pool({ connectionString: db.connectionString, max: 1 });
  pool.on('error', () => undefined);
  t.after(() => pool.end());
  await pool.query(`CREATE TABLE tally.probe_due (x int4); CREATE TABLE tally.probe_short (x int4)`);
  await pool.query(`CREATE TABLE public.probe_elsewhere (x int4)`);
  await pool.query(`INSERT INTO tally.probe_due SELECT generate_series(1, $1::int4)`, [
    FIRST_STATISTICS_MIN_ROWS,
  ]);
  await pool.query(`INSERT INTO tally.probe_short SELECT generate_series(1, $1::int4)`, [
    FIRST_STATISTICS_MIN_ROWS - 1,
  ]);
  await pool.query(`INSERT INTO public.probe_elsewhere SELECT generate_series(1, 10000)`);
  await pool.query('SELECT pg_stat_force_next_flush()');

  const statistics = new FirstStatistics(pool, (err) => assert.fail(String(err)));
  const first = await statistics.analyze();
  assert.ok(first.includes('tally.probe_due'), `analyzed: ${first.join(', ')}`);
  assert.ok(!first.includes('tally.probe_short'), 'under the threshold: left to autovacuum');
  assert.ok(!first.some((name) => name.startsWith('public.')), "only Tally's own schema");
  assert.ok(await analyzed(pool, 'tally.probe_due'));
  assert.ok(!(await analyzed(pool, 'tally.probe_short')));

  // Analyzed once: from then on its statistics are autovacuum's to keep, however much is written.
  await pool.query(`INSERT INTO tally.probe_due SELECT generate_series(1, $1::int4)`, [
    FIRST_STATISTICS_MIN_ROWS,
  ]);
  await pool.query('SELECT pg_stat_force_next_flush()');
  assert.ok(!(await statistics.analyze()).includes('tally.probe_due'));
});

test("the writer's commits analyze a new day's raw partition", { timeout: 120_000 }, async (t) => {
  const db = await startTestPostgres(t);
  // Autovacuum off: only the writer's FirstStatistics can analyze the partition here.
  await db.pool.query(`ALTER SYSTEM SET autovacuum = off`);
  await db.pool.query('SELECT pg_reload_conf()');
  const errors: unknown[] = [];
  const writer = new BatchWriter({
    pool: db.pool,
    partitions: new RawPartitions(db.pool, undefined),
    storeRaw: true,
    statistics: new FirstStatistics(db.pool, (err) => errors.push(err)),
  });
  const day = Date.UTC(2024, 2, 1);
  let n = 0;
  const batch = () =>
    Array.from({ length: 200 }, () => {
      n++;
      return toTallyEvent({
        event_id: `e${n}`,
        type: 'page_view',
        user_id: `u${n % 97}`,
        ts: day + n,
        page_url: '/',
      });
    });
  // The backends flush their statistics when idle, within seconds: a liveness bound, not a timing.
  const deadline = Date.now() + 60_000;
  while (!(await analyzed(db.pool, 'tally.events_p20240301'))) {
    assert.ok(Date.now() < deadline, `the partition was not analyzed after ${n} events`);
    await writer.write({ events: batch() });
    await sleep(200);
  }
  assert.deepEqual(errors, []);
});
