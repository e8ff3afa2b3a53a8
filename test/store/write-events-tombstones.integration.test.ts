import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { createMetrics } from '../../src/observability/metrics.ts';
import { BatchProcessor } from '../../src/process/batch-processor.ts';
import { BatchWriter, DEFAULT_SESSION_TIMEOUT_MS, type BatchResult } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { userHash, userHashKey } from '../../src/store/user-hash.ts';
import { startTestPostgres, waitFor } from '../helpers/kafka-process.ts';
import { prng, toTallyEvent, type OracleEvent } from '../helpers/oracle.ts';
import { sessionize, storedEvents, storedVisits } from '../helpers/sessionizer.ts';
import { assertExactlyOnce, expectedRollups, storedState } from '../helpers/stored-state.ts';

const RETRY = { maxRetryTimeMs: 5000, minDelayMs: 10, maxDelayMs: 100 };
const BASE = Date.UTC(2024, 0, 1);

interface Setup {
  pool: pg.Pool;
  key: Buffer;
  writer: BatchWriter;
  processor: BatchProcessor;
  metrics: ReturnType<typeof createMetrics>;
}

/** A fresh PostgreSQL with its stored hash key, and a writer (behind a BatchProcessor, for the metric) using it. */
async function setUp(t: TestContext, storeRaw = true): Promise<Setup> {
  const db = await startTestPostgres(t);
  const pool = new pg.Pool({ connectionString: db.connectionString, max: 4 });
  pool.on('error', () => undefined);
  t.after(() => pool.end());
  const key = await userHashKey(pool, undefined);
  const writer = new BatchWriter({
    pool,
    partitions: new RawPartitions(pool, undefined),
    storeRaw,
    userHashKey: key,
  });
  const metrics = createMetrics(undefined, { defaults: false });
  const processor = new BatchProcessor({ writer, metrics, logger: pino({ level: 'silent' }) });
  return { pool, key, writer, processor, metrics };
}

/** What tally.delete_user leaves behind for the user (migration 022): its tombstone. */
async function tombstone(db: pg.Pool | pg.PoolClient, key: Buffer, userId: string, project = 'default') {
  await db.query('INSERT INTO tally.user_tombstones (project, user_hash) VALUES ($1, $2)', [
    project,
    userHash(key, userId),
  ]);
}

async function tombstoneCount(pool: pg.Pool, key: Buffer, userId: string, project = 'default') {
  const { rows } = await pool.query<{ dropped_events: string; last_dropped_at: Date | null }>(
    'SELECT dropped_events, last_dropped_at FROM tally.user_tombstones WHERE project = $1 AND user_hash = $2',
    [project, userHash(key, userId)],
  );
  return { dropped: Number(rows[0].dropped_events), last: rows[0].last_dropped_at };
}

/** Where the user appears outside the rollups: its number, raw rows, visits and feed rows (migration 018). */
async function traces(pool: pg.Pool, userId: string, project = 'default') {
  const count = async (sql: string) =>
    Number((await pool.query<{ n: string }>(sql, [project, userId])).rows[0].n);
  return {
    numbers: await count('SELECT count(*) AS n FROM tally.user_numbers WHERE project = $1 AND user_id = $2'),
    raw: await count('SELECT count(*) AS n FROM tally.events WHERE project = $1 AND user_id = $2'),
    visits: await count('SELECT count(*) AS n FROM tally.sessions WHERE project = $1 AND user_id = $2'),
    feed: await count(
      'SELECT count(*) AS n FROM tally.model_changes WHERE project = $1 AND $2 = ANY (user_ids)',
    ),
  };
}

/** `n` events of users u0…u5 over a few minutes and pages, ids `${prefix}-i`. */
function traffic(n: number, seed: number, prefix: string, start = BASE): OracleEvent[] {
  const random = prng(seed);
  return Array.from({ length: n }, (_, i) => ({
    event_id: `${prefix}-${i}`,
    type: random() < 0.6 ? 'page_view' : 'click',
    user_id: `u${Math.floor(random() * 6)}`,
    ts: start + Math.floor(random() * 5) * 60_000 + i,
    page_url: `/p/${Math.floor(random() * 4)}`,
  }));
}

async function writeAll(
  processor: BatchProcessor,
  batches: readonly (readonly OracleEvent[])[],
  project = 'default',
) {
  const results: BatchResult[] = [];
  for (const b of batches)
    results.push(await processor.process({ events: b.map((e) => toTallyEvent(e, project)) }, RETRY));
  return results;
}

const sum = (results: readonly BatchResult[], field: 'dropped' | 'inserted' | 'duplicates') =>
  results.reduce((n, r) => n + r[field], 0);

async function assertVisitsOfRawRows(pool: pg.Pool, project = 'default') {
  assert.deepEqual(
    await storedVisits(pool, project),
    sessionize(await storedEvents(pool, project), DEFAULT_SESSION_TIMEOUT_MS),
    `visits of ${project}: those of its raw rows`,
  );
}

test('a tombstoned user’s events are dropped and counted, the others stored exactly, and a replay changes nothing', async (t) => {
  const { pool, key, processor, metrics } = await setUp(t);
  await tombstone(pool, key, 'u1');
  const events = traffic(600, 1, 'e');
  const batches = [events.slice(0, 200), events.slice(200, 400), events.slice(400)];
  const kept = events.filter((e) => e.user_id !== 'u1');
  const gone = events.length - kept.length;
  assert.ok(gone > 50, 'the traffic has u1 in it');
  // Another project in the same batches: u1 has no tombstone there.
  const other = traffic(300, 2, 'o');

  const mixed = await Promise.all(
    batches.map((b, i) =>
      processor.process(
        {
          events: [
            ...b.map((e) => toTallyEvent(e)),
            ...other.slice(i * 100, i * 100 + 100).map((e) => toTallyEvent(e, 'other')),
          ],
        },
        RETRY,
      ),
    ),
  );
  assert.equal(sum(mixed, 'dropped'), gone, 'BatchResult.dropped');
  assert.equal(sum(mixed, 'inserted'), kept.length + other.length);
  assert.equal(sum(mixed, 'duplicates'), 0, 'a dropped event is no duplicate');
  await assertExactlyOnce(pool, kept);
  await assertExactlyOnce(pool, other, 'other');
  await assertVisitsOfRawRows(pool);
  assert.deepEqual(
    await traces(pool, 'u1'),
    { numbers: 0, raw: 0, visits: 0, feed: 0 },
    'u1 nowhere in default',
  );
  const inOther = await traces(pool, 'u1', 'other');
  assert.ok(
    inOther.numbers === 1 && inOther.visits > 0 && inOther.feed > 0,
    'u1 of the other project is stored',
  );
  const first = await tombstoneCount(pool, key, 'u1');
  assert.equal(first.dropped, gone, 'tombstone dropped_events');
  assert.ok(first.last !== null, 'tombstone last_dropped_at');
  assert.equal((await metrics.droppedDeletedUserEvents.get()).values[0].value, gone, 'metric');

  const before = await storedState(pool);
  const replayed = await writeAll(processor, batches);
  assert.equal(sum(replayed, 'dropped'), gone, 'the replay is dropped again');
  assert.equal(sum(replayed, 'inserted'), 0);
  assert.equal(sum(replayed, 'duplicates'), kept.length);
  assert.deepEqual(await storedState(pool), before, 'the replay changed nothing');
  assert.equal((await tombstoneCount(pool, key, 'u1')).dropped, 2 * gone, 'and is counted');
  assert.equal((await metrics.droppedDeletedUserEvents.get()).values[0].value, 2 * gone);

  // Late events (a day before everything else, new ids): u1's dropped, the others' stored.
  const late = traffic(120, 3, 'late', BASE - 86_400_000);
  const lateResult = await writeAll(processor, [late]);
  const lateGone = late.filter((e) => e.user_id === 'u1').length;
  assert.equal(lateResult[0].dropped, lateGone);
  await assertExactlyOnce(pool, [...kept, ...late.filter((e) => e.user_id !== 'u1')]);
  await assertVisitsOfRawRows(pool);
  assert.deepEqual(await traces(pool, 'u1'), { numbers: 0, raw: 0, visits: 0, feed: 0 });
  assert.equal((await tombstoneCount(pool, key, 'u1')).dropped, 2 * gone + lateGone);
});

test('with raw storage off the user hash is sent all the same: dropped, rollups exact', async (t) => {
  const { pool, key, processor } = await setUp(t, false);
  await tombstone(pool, key, 'u4');
  const events = traffic(400, 4, 'e');
  const kept = events.filter((e) => e.user_id !== 'u4');
  const results = await writeAll(processor, [events.slice(0, 150), events.slice(150)]);
  assert.equal(sum(results, 'dropped'), events.length - kept.length);
  const state = await storedState(pool);
  const expected = expectedRollups(kept);
  assert.deepEqual(state.events, expected.events);
  assert.deepEqual(state.pages, expected.pages);
  assert.deepEqual(state.users, expected.users);
  assert.equal(state.userBitCount, expected.users.length);
  assert.deepEqual(state.eventIds, kept.map((e) => e.event_id).sort());
  assert.equal((await traces(pool, 'u4')).numbers, 0);
  assert.equal((await tombstoneCount(pool, key, 'u4')).dropped, events.length - kept.length);
});

test('a user the writer numbered before its tombstone: its later events are dropped by write_events itself', async (t) => {
  const { pool, key, processor } = await setUp(t);
  const before = traffic(200, 5, 'a');
  await writeAll(processor, [before]);
  // Its number is cached now (and its row stays: this test deletes nothing, only adds the tombstone).
  await tombstone(pool, key, 'u2');
  const after = traffic(300, 6, 'b', BASE + 3_600_000);
  const results = await writeAll(processor, [after]);
  const gone = after.filter((e) => e.user_id === 'u2').length;
  assert.equal(results[0].dropped, gone);
  await assertExactlyOnce(pool, [...before, ...after.filter((e) => e.user_id !== 'u2')]);
  await assertVisitsOfRawRows(pool);
});

/** Whether a session waits for the lock 741121 of a project (a batch behind a deletion). */
async function someoneWaitsForProjectLock(pool: pg.Pool): Promise<boolean> {
  const { rows } = await pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_locks
      WHERE locktype = 'advisory' AND classid = 741121 AND NOT granted`,
  );
  return Number(rows[0].n) > 0;
}

/**
 * Plays tally.delete_user's part (migration 022): the project's lock 741121 exclusively, the
 * tombstone, and COMMIT only once a batch of `write` waits for the lock.
 */
async function deleteWhileWriting(
  pool: pg.Pool,
  key: Buffer,
  userId: string,
  write: () => Promise<BatchResult>,
): Promise<BatchResult> {
  const deletion = await pool.connect();
  try {
    await deletion.query('BEGIN');
    await deletion.query(`SELECT pg_advisory_xact_lock(741121, hashtext('default'))`);
    await tombstone(deletion, key, userId);
    let settled = false;
    const writing = write().finally(() => (settled = true));
    await waitFor('the batch waits for the deletion', () => someoneWaitsForProjectLock(pool), 20_000, 50);
    assert.equal(settled, false);
    await deletion.query('COMMIT');
    return await writing;
  } finally {
    deletion.release();
  }
}

test('a batch that meets a deletion in progress waits for it, then drops its user (numbered or new)', async (t) => {
  const { pool, key, processor } = await setUp(t);
  const first = traffic(300, 7, 'a');
  await writeAll(processor, [first]);

  // Every user is numbered already: the batch waits in tally.write_events.
  const second = traffic(300, 8, 'b', BASE + 600_000);
  const known = await deleteWhileWriting(pool, key, 'u3', () =>
    processor.process({ events: second.map((e) => toTallyEvent(e)) }, RETRY),
  );
  assert.equal(known.dropped, second.filter((e) => e.user_id === 'u3').length);

  // A user never seen: the batch waits where it would number it, and numbers it not.
  const third = [
    ...traffic(200, 9, 'c', BASE + 1_200_000),
    ...traffic(40, 10, 'n', BASE + 1_200_000).map((e) => ({ ...e, user_id: 'newcomer' })),
  ];
  const fresh = await deleteWhileWriting(pool, key, 'newcomer', () =>
    processor.process({ events: third.map((e) => toTallyEvent(e)) }, RETRY),
  );
  assert.equal(fresh.dropped, 40 + third.filter((e) => e.user_id === 'u3').length);
  assert.deepEqual(await traces(pool, 'newcomer'), { numbers: 0, raw: 0, visits: 0, feed: 0 });

  const stored = [
    ...first,
    ...second.filter((e) => e.user_id !== 'u3'),
    ...third.filter((e) => e.user_id !== 'u3' && e.user_id !== 'newcomer'),
  ];
  await assertExactlyOnce(pool, stored);
  await assertVisitsOfRawRows(pool);
});
