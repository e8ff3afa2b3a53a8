import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { toTallyEvent } from '../helpers/oracle.ts';

/**
 * Migration 019's planner settings for tally.refresh_sessions (why: its header). A later
 * CREATE OR REPLACE FUNCTION of refresh_sessions drops them silently; this says so instead.
 */
test(
  'tally.refresh_sessions keeps its planner settings after every migration',
  { timeout: 120_000 },
  async (t) => {
    const db = await startTestPostgres(t);
    const { rows } = await db.pool.query<{ config: string[] | null }>(
      `SELECT p.proconfig AS config
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'tally' AND p.proname = 'refresh_sessions'`,
    );
    assert.equal(rows.length, 1, 'one tally.refresh_sessions');
    assert.deepEqual([...(rows[0].config ?? [])].sort(), [
      'enable_hashjoin=off',
      'enable_mergejoin=off',
      'plan_cache_mode=force_custom_plan',
    ]);
  },
);

/**
 * Migration 026: tally.sessions keeps room on its pages, so that extending a visit is a HOT
 * update (the new row version on the same page, no index entries). Counted by PostgreSQL's own
 * statistics of the writer's one connection: at the default fill factor the pages of 2,000 visits
 * are full, and nearly no extension is HOT.
 */
test('extending visits are HOT updates', { timeout: 120_000 }, async (t) => {
  const db = await startTestPostgres(t);
  // One connection: its statistics are flushed on request before they are read.
  const pool = new pg.Pool({ connectionString: db.connectionString, max: 1 });
  pool.on('error', () => undefined);
  t.after(() => pool.end());
  const writer = new BatchWriter({ pool, partitions: new RawPartitions(pool, undefined), storeRaw: true });
  const base = Date.UTC(2024, 0, 1);
  const batch = (round: number) =>
    Array.from({ length: 2000 }, (_, u) =>
      toTallyEvent({
        event_id: `e-${round}-${u}`,
        type: 'page_view',
        user_id: `u-${u}`,
        ts: base + round * 60_000,
        page_url: '/',
      }),
    );
  const updates = async () => {
    await pool.query('SELECT pg_stat_force_next_flush()');
    const { rows } = await pool.query<{ all: string; hot: string }>(
      `SELECT n_tup_upd AS all, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relid = 'tally.sessions'::regclass`,
    );
    return { all: Number(rows[0].all), hot: Number(rows[0].hot) };
  };
  // The first extension fills the free room with new versions; from the second on, those the
  // previous batches left dead are pruned to make room.
  await writer.write({ events: batch(0) });
  await writer.write({ events: batch(1) });
  const before = await updates();
  await writer.write({ events: batch(2) });
  const after = await updates();
  const all = after.all - before.all;
  const hot = after.hot - before.hot;
  assert.equal(all, 2000, 'each visit extended once');
  // Measured: 1,326 of 2,000 at fill factor 70, 24 at 100 (before migration 026).
  assert.ok(hot >= 1000, `${hot} of ${all} extensions were HOT updates`);
});

/**
 * Migration 027: the append check of the refresh plans only the raw partitions between its bounds.
 * auto_explain sends the plan of every statement inside the function to this client (as notices):
 * the append check's statement (the one with the CTE fresh) must name none of a month of
 * partitions far from the batch, which, without the bounds, it planned and opened on every call.
 * The user's new event comes after its visit, so the check runs (and finds V's first row), and of
 * the two cuts only the appended visit's runs.
 */
test(
  "the refresh's append check plans only the raw partitions it can read",
  { timeout: 120_000 },
  async (t) => {
    const db = await startTestPostgres(t);
    const writer = new BatchWriter({
      pool: db.pool,
      partitions: new RawPartitions(db.pool, undefined),
      storeRaw: true,
    });
    await db.pool.query(`
    DO $$ BEGIN
      FOR i IN 1..30 LOOP
        EXECUTE format('CREATE TABLE tally.events_far%s PARTITION OF tally.events FOR VALUES FROM (%L) TO (%L)',
          i, timestamptz '2020-01-01' + (i - 1) * interval '1 day', timestamptz '2020-01-01' + i * interval '1 day');
      END LOOP;
    END $$`);
    const base = Date.UTC(2024, 0, 1, 12);
    const event = (id: string, ts: number) =>
      toTallyEvent({ event_id: id, type: 'page_view', user_id: 'u', ts, page_url: '/' });
    await writer.write({ events: [event('e1', base), event('e2', base + 60_000)] });

    const client = await db.pool.connect();
    const plans: string[] = [];
    client.on('notice', (notice) => plans.push(notice.message ?? ''));
    try {
      await client.query(`LOAD 'auto_explain'`);
      await client.query(`SET auto_explain.log_min_duration = 0`);
      await client.query(`SET auto_explain.log_nested_statements = on`);
      await client.query(`SET auto_explain.log_level = notice`);
      await client.query('BEGIN');
      // As the writer calls it for the batch's fresh events, whose raw rows it inserted just before.
      await client.query(
        `INSERT INTO tally.events (project, event_id, type, user_id, ts, received_at, page_url, path, is_bot)
       VALUES ('default', 'e3', 'page_view', 'u', to_timestamp($1 / 1000.0), now(), '/', '/', false)`,
        [base + 180_000],
      );
      await client.query(
        'SELECT tally.refresh_sessions($1::text[], $2::text[], $3::float8[], $4::text[], $5::float8)',
        [['default'], ['u'], [base + 180_000], [null], 30 * 60_000],
      );
      const visits = await client.query<{ events: number }>(`SELECT events FROM tally.sessions`);
      assert.deepEqual(
        visits.rows.map((r) => r.events),
        [3],
        'the visit extended',
      );
    } finally {
      await client.query('ROLLBACK');
      client.release(true);
    }
    const check = plans.filter((plan) => plan.includes('CTE fresh'));
    assert.equal(check.length, 1, `one plan of the append check among ${plans.length}`);
    assert.match(check[0], /events_p20240101/, "the plan reads the batch day's partition");
    assert.doesNotMatch(check[0], /events_far/, 'no partition far from the batch is planned');
    // And only the cut it needs: the appended visit's, not the recomputed visits' (none here).
    assert.equal(plans.filter((plan) => plan.includes('Update on sessions')).length, 1);
    assert.equal(
      plans.filter((plan) => plan.includes('Insert on sessions')).length,
      0,
      'no cut with nothing to cut',
    );
  },
);
