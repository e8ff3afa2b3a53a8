import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TallyEvent } from '../../src/event/types.ts';
import { piecesFor } from '../../src/query/range-pieces.ts';
import { StatsStore } from '../../src/store/stats-store.ts';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { createPool } from '../../src/store/pool.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { Oracle, pool, prng, toTallyEvent, type OracleEvent } from '../helpers/oracle.ts';
import { assertExactlyOnce, expectedRollups, storedState } from '../helpers/stored-state.ts';

const DAY = 86_400_000;
const MINUTE = 60_000;
// More users than one bit-string chunk (8192) holds, so counts cross chunks.
const USERS = 20_000;
const EVENTS = 40_000;

test(
  'distinct users from the bit strings: concurrent writers with cold caches and overlapping users and events give the oracle',
  { timeout: 240_000 },
  async (t) => {
    const db = await startTestPostgres(t);
    const dbPool = createPool(
      { connectionString: db.connectionString, max: 8, applicationName: 'test-user-bits' },
      () => undefined,
    );
    t.after(() => dbPool.end());
    const random = prng(4711);
    const start = Math.floor(Date.now() / DAY) * DAY - 3 * DAY;
    const oracle = new Oracle();
    for (let i = 0; i < EVENTS; i++) {
      oracle.add({
        event_id: `e-${i}`,
        type: random() < 0.5 ? 'page_view' : 'click',
        user_id: `user-${Math.floor(random() * USERS)}`,
        ts: start + Math.floor(random() * 3 * DAY),
      });
    }
    // Three writers, each with its own (cold) number cache, as three processors would be. Every
    // batch goes to two writers at once, so every event and every new user races with itself.
    const writers = [0, 1, 2].map(
      () =>
        new BatchWriter({ pool: dbPool, partitions: new RawPartitions(dbPool, undefined), storeRaw: true }),
    );
    const batches: TallyEvent[][] = [];
    for (let i = 0; i < EVENTS; i += 1000)
      batches.push(oracle.events.slice(i, i + 1000).map((e) => toTallyEvent(e)));
    await pool(
      batches.flatMap((batch, i) => [
        () => writers[i % 3].write({ events: batch }),
        () => writers[(i + 1) % 3].write({ events: [...batch].reverse() }),
      ]),
      4,
    );
    await assertExactlyOnce(dbPool, oracle.events);

    const { rows } = await dbPool.query<{ n: number; max: number }>(
      `SELECT count(*)::int AS n, max(num) AS max FROM tally.user_numbers WHERE project = 'default'`,
    );
    const distinct = new Set(oracle.events.map((e) => e.user_id)).size;
    assert.equal(rows[0].n, distinct, 'one number per user');

    // Ranges with ragged minutes, hours and whole days, summed over several output indexes.
    const stats = new StatsStore(dbPool);
    for (let k = 0; k < 12; k++) {
      const from = start + Math.floor((random() * 2 * DAY) / MINUTE) * MINUTE;
      const to = from + Math.floor((random() * (start + 3 * DAY - from)) / MINUTE) * MINUTE + MINUTE;
      const got = await stats.uniqueUsers('default', piecesFor(from, to, 0));
      assert.equal(got.get(0) ?? 0, oracle.summary(from, to).unique_users, `range ${from}..${to}`);
    }
  },
);

test('tally.rebuild_user_sets rebuilds the numbers, minute arrays and bits from raw rows (data sets)', async (t) => {
  const db = await startTestPostgres(t);
  const writer = new BatchWriter({
    pool: db.pool,
    partitions: new RawPartitions(db.pool, undefined),
    storeRaw: true,
  });
  const now = Date.now();
  const events: OracleEvent[] = Array.from({ length: 300 }, (_, i) => ({
    event_id: `r-${i}`,
    type: 'click',
    user_id: `u-${i % 97}`,
    ts: now - i * 7 * MINUTE,
  }));
  await writer.write({ events: events.map((e) => toTallyEvent(e, 'p1')) });
  // A project whose raw rows were written directly (as bench/dataset.ts does), without numbers or
  // user sets, and with a bot's event, which no rollup counts.
  await db.pool.query(
    `INSERT INTO tally.events (project, event_id, type, user_id, ts, received_at, is_bot)
     SELECT 'p2', event_id, type, user_id, ts, received_at, false FROM tally.events WHERE project = 'p1'
     UNION ALL SELECT 'p2', 'bot-1', 'click', 'a-bot', now(), now(), true`,
  );
  const before = await storedState(db.pool, 'p1');
  assert.equal(before.users.length, expectedRollups(events).users.length);
  await db.pool.query(`SELECT tally.rebuild_user_sets('p1'), tally.rebuild_user_sets('p2')`);
  for (const project of ['p1', 'p2']) {
    const state = await storedState(db.pool, project);
    assert.deepEqual(state.users, before.users, project);
    assert.equal(state.userBitCount, before.users.length, project);
  }
  // Numbers given by the rebuild are taken into account by the next writer.
  await writer.write({
    events: [toTallyEvent({ event_id: 'late', type: 'click', user_id: 'new-user', ts: now }, 'p2')],
  });
  const { rows } = await db.pool.query<{ n: number; d: number }>(
    `SELECT count(*)::int AS n, count(DISTINCT num)::int AS d FROM tally.user_numbers WHERE project = 'p2'`,
  );
  assert.equal(rows[0].n, 98);
  assert.equal(rows[0].d, 98);
});
