import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { refreshSessions } from '../../src/store/sessions-store.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { toTallyEvent } from '../helpers/oracle.ts';
import { pageView } from '../helpers/sessions-setup.ts';

/**
 * Migration 019's planner settings for tally.refresh_sessions (why: its header). A later
 * CREATE OR REPLACE FUNCTION of refresh_sessions drops them silently; this says so instead.
 */
test(
  'tally.refresh_sessions keeps its planner settings after every migration',
  { timeout: 120_000 },
  async (t) => {
    const db = await startTestPostgres(t);
    const config = async (name: string) => {
      const { rows } = await db.pool.query<{ config: string[] | null }>(
        `SELECT p.proconfig AS config
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'tally' AND p.proname = $1`,
        [name],
      );
      assert.equal(rows.length, 1, `one tally.${name}`);
      return [...(rows[0].config ?? [])].sort();
    };
    // Migration 029: the wrapper chooses the plan cache mode, the merge keeps the joins' settings.
    assert.deepEqual(await config('refresh_sessions'), ['plan_cache_mode=force_custom_plan']);
    assert.deepEqual(await config('merge_visits'), ['enable_hashjoin=off', 'enable_mergejoin=off']);
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
 * Migration 028: the refresh reads no raw row, so it plans no raw partition however many days of
 * raw storage there are (before, each read of tally.events planned and opened every one on every
 * call: migration 027's header). auto_explain sends the plan of every statement inside the
 * function to this client (as notices); a month of partitions far from the batch, and the
 * batch's own, must appear in none.
 */
test('the refresh plans no raw partition', { timeout: 120_000 }, async (t) => {
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

  const { client, plans } = await explainingClient(db.pool);
  try {
    // As the writer calls it for the batch's fresh events, whose raw rows it inserted just before:
    // one event inside the visit, one after it.
    await client.query(
      `INSERT INTO tally.events (project, event_id, type, user_id, ts, received_at, page_url, path, is_bot)
       SELECT 'default', x.id, 'page_view', 'u', to_timestamp(x.ts / 1000.0), now(), '/', '/', false
         FROM unnest($1::text[], $2::float8[]) AS x(id, ts)`,
      [
        ['e3', 'e4'],
        [base + 30_000, base + 180_000],
      ],
    );
    await refreshSessions(
      client,
      [
        pageView('default', 'u', 'e3', base + 30_000, { path: '/' }),
        pageView('default', 'u', 'e4', base + 180_000, { path: '/' }),
      ],
      30 * 60_000,
    );
    const visits = await client.query<{ events: number }>(`SELECT events FROM tally.sessions`);
    assert.deepEqual(
      visits.rows.map((r) => r.events),
      [4],
      'the visit merged',
    );
  } finally {
    await client.query('ROLLBACK');
    client.release(true);
  }
  assert.ok(
    plans.some((plan) => plan.includes('Update on sessions')),
    'the plans were seen',
  );
  const reading = plans.filter((plan) => /events_p\d+|events_far/.test(plan));
  assert.deepEqual(reading, [], 'no plan names a raw partition');
});

/**
 * Migration 029: small batches (the micro-batcher's single events) use the connection's generic
 * plans, large ones (the processor's) plans made for their own arguments. Seen in the estimate of
 * the touched visits' lookup over the batch's events: a custom plan counts the elements of the
 * call's arrays, a generic one cannot and guesses (the same for every call).
 */
test(
  'the refresh plans small batches once and large ones for their arguments',
  { timeout: 120_000 },
  async (t) => {
    const db = await startTestPostgres(t);
    await new RawPartitions(db.pool, undefined).ensure([Date.UTC(2024, 0, 1)]);
    const { client, plans } = await explainingClient(db.pool);
    const lookupEstimate = async (count: number) => {
      plans.length = 0;
      // Two events a user, two hours apart: a user's new events that chain into one visit take
      // migration 031's way, which has no such lookup.
      const events = Array.from({ length: count }, (_, i) =>
        pageView('default', `u${i >> 1}`, `e${count}-${i}`, Date.UTC(2024, 0, 1, 12 + 2 * (i & 1)) + i, {
          path: '/',
        }),
      );
      await refreshSessions(client, events, 30 * 60_000);
      const lookup = plans.find((plan) => plan.includes('The same conversion as tally.write_events'));
      assert.ok(lookup !== undefined, "the lookup's plan was seen");
      const estimate = /Function Scan on x\s+\(cost=[^ ]+ rows=(\d+)/.exec(lookup);
      assert.ok(estimate !== null, lookup);
      return Number(estimate[1]);
    };
    try {
      const small = await lookupEstimate(3);
      const large = await lookupEstimate(600);
      const limit = await lookupEstimate(500);
      assert.ok(large >= 300, `a plan for the 600 events of the call: ${large} rows estimated`);
      assert.ok(limit < 100, `a generic plan for 500 events: ${limit} rows estimated`);
      assert.equal(small, limit, 'the same generic plan for 3 events');
      const mode = await client.query<{ plan_cache_mode: string }>('SHOW plan_cache_mode');
      assert.equal(mode.rows[0].plan_cache_mode, 'auto', "the caller's setting is untouched");
    } finally {
      await client.query('ROLLBACK');
      client.release(true);
    }
  },
);

/**
 * A connection of `pool` in an open transaction whose every statement, those inside functions
 * too, sends its plan to `plans` (auto_explain's notices). The caller rolls back and releases it.
 */
async function explainingClient(pool: pg.Pool): Promise<{ client: pg.PoolClient; plans: string[] }> {
  const client = await pool.connect();
  const plans: string[] = [];
  client.on('notice', (notice) => plans.push(notice.message ?? ''));
  await client.query(`LOAD 'auto_explain'`);
  await client.query(`SET auto_explain.log_min_duration = 0`);
  await client.query(`SET auto_explain.log_nested_statements = on`);
  await client.query(`SET auto_explain.log_level = notice`);
  await client.query('BEGIN');
  return { client, plans };
}
