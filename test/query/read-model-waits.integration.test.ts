import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import pino from 'pino';
import { createMetrics } from '../../src/observability/metrics.ts';
import { ReadModel } from '../../src/query/read-model.ts';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { markModelRebuild } from '../../src/store/model-feed.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { startTestPostgres, waitFor } from '../helpers/kafka-process.ts';
import { dataVersion, eventsOf } from '../helpers/twin-projects.ts';

/**
 * What the read model spends on staying current (src/query/project-model.ts): a question waits
 * for a catch-up a bounded time, then PostgreSQL answers while the catch-up goes on; a catch-up
 * that would re-read too much becomes a reload; a load starts no sooner than the last one's
 * duration after it ended. A slow catch-up or load is made by holding a table lock the model's
 * reads need, so nothing here depends on how fast the machine is.
 */

const P = 'p';
const T0 = Date.UTC(2013, 4, 6, 10);
const MINUTE = 60_000;

interface LogLine {
  msg: string;
  time: number;
  ms?: number;
  users?: number;
  maxUsers?: number;
  reason?: string;
  spacing?: number;
}

async function setUp(t: TestContext, opts: { maxDeltaShare?: number } = {}) {
  const db = await startTestPostgres(t);
  const pool = new pg.Pool({ connectionString: db.connectionString, max: 6 });
  pool.on('error', () => undefined);
  t.after(() => pool.end());
  const writer = new BatchWriter({ pool, partitions: new RawPartitions(pool, undefined), storeRaw: true });
  let sent = 0;
  const body = (user: string) => ({
    event_id: `e${++sent}`,
    type: 'page_view',
    user_id: user,
    timestamp: new Date(T0 + (sent % 600) * MINUTE).toISOString(),
    page_url: `https://example.com/${sent % 7}`,
  });
  /** Writes one batch: `perUser` page views for each of `users`. */
  const write = async (users: readonly string[], perUser = 1) => {
    const bodies = users.flatMap((user) => Array.from({ length: perUser }, () => body(user)));
    await writer.write({ events: eventsOf(bodies, P, Date.now()) });
  };
  const log: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => log.push(JSON.parse(line) as LogLine) });
  const model = new ReadModel({
    pool,
    version: (project) => dataVersion(pool, project),
    cutoff: () => Number.NEGATIVE_INFINITY,
    logger,
    metrics: createMetrics(),
    ...opts,
  });
  t.after(() => model.stop());
  const lines = (msg: string) => log.filter((l) => l.msg === msg);
  return { pool, write, model, lines };
}

/** Holds `table` locked (ACCESS EXCLUSIVE) until `release` is called. */
async function lockTable(pool: pg.Pool, table: string) {
  const client = await pool.connect();
  await client.query(`BEGIN; LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await client.query('ROLLBACK');
      client.release();
    },
  };
}

/** Whether a statement starting with `prefix` waits on a lock (`not`: one that does not start so). */
async function waitingOnLock(pool: pg.Pool, prefix: string, not = false): Promise<boolean> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE wait_event_type = 'Lock' AND (query LIKE $1) <> $2`,
    [`${prefix}%`, not],
  );
  return rows[0].n > 0;
}

/**
 * Starts the first load of `model` and holds it on a lock for half a second after it has taken
 * its snapshot (so it takes at least that long), running `meanwhile` during the hold.
 */
async function slowFirstLoad(pool: pg.Pool, model: ReadModel, meanwhile = async () => {}) {
  const lock = await lockTable(pool, 'tally.events');
  assert.equal(await model.at(P), undefined, 'not loaded yet: the question starts the load');
  try {
    await waitFor(
      'the load to wait on the lock',
      () => waitingOnLock(pool, 'DECLARE model_rows'),
      60_000,
      20,
    );
    await meanwhile();
    await sleep(500);
  } finally {
    await lock.release();
  }
}

/**
 * The `i`-th load's duration and how long after the end of the one before it it started.
 * `time` is taken when the line is written, just after a load's end: time - ms is no earlier
 * than the load's start, and the previous line's time no earlier than the previous load's end.
 */
function loadGap(loads: readonly LogLine[], i: number) {
  const [before, load] = [loads[i - 1], loads[i]];
  assert.ok(before !== undefined && load !== undefined, `${i + 1} loads`);
  return { previousMs: before.ms!, gap: load.time - load.ms! - before.time };
}

const users = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `u${from + i}`);

test('a catch-up slower than the wait: PostgreSQL answers, the catch-up goes on, and a later question gets the model at the new version', async (t) => {
  const { pool, write, model, lines } = await setUp(t);
  await write(users(20), 3);
  assert.equal(await model.ready(P), true, 'loaded');
  const loaded = await model.at(P);
  assert.ok(loaded !== undefined);

  await write(['newcomer']);
  // The catch-up's read of the change feed waits on this lock until it is released.
  const lock = await lockTable(pool, 'tally.model_changes');
  // Released whatever happens: the pool's end would wait for the blocked catch-up.
  try {
    const blocked = Symbol('the question waited for the blocked catch-up');
    const first = await Promise.race([model.at(P, 100), sleep(20_000, blocked, { ref: false })]);
    assert.equal(first, undefined, 'past its wait the question is answered by PostgreSQL');
    assert.equal(await model.at(P, 0), undefined, 'so is the next one, on the same catch-up');
    assert.ok(await waitingOnLock(pool, 'WITH c AS'), 'the catch-up still runs, waiting on the lock');
    assert.equal(lines('read model caught up').length, 0);
  } finally {
    await lock.release();
  }
  // No question asked meanwhile: the catch-up the first question started finishes on its own.
  await waitFor('the catch-up to end', () => lines('read model caught up').length === 1, 60_000, 20);
  const layers = await model.at(P, 0);
  assert.ok(layers !== undefined, 'the model answers at the new version without waiting');
  assert.equal(layers, loaded, 'by a catch-up of the same layers, not a reload');
  assert.equal(layers.count, 2, 'into one delta layer');
  assert.ok(
    layers.models.some((m) => m.users.find('newcomer') >= 0),
    'holding the new user',
  );
  assert.equal(lines('read model caught up')[0].users, 1, 'one catch-up, of the one user');
  assert.equal(lines('read model loaded').length, 1, 'no reload');
});

test('a load starts no sooner than the last one took after it ended', async (t) => {
  const { pool, write, model, lines } = await setUp(t);
  await write(users(20), 3);
  await slowFirstLoad(pool, model);
  assert.equal(await model.ready(P), true, 'loaded');

  // A version the feed does not describe: the next question finds it and asks for a reload.
  await markModelRebuild(pool, [P]);
  assert.equal(await model.ready(P), true, 'reloaded');
  const { previousMs, gap } = loadGap(lines('read model loaded'), 1);
  assert.ok(previousMs >= 500, `the first load took its wait (${previousMs} ms)`);
  assert.ok(
    gap >= previousMs,
    `the second load started ${gap} ms after the first ended, which took ${previousMs} ms`,
  );
});

test('a load whose layers are outgrown before catching up for as long as it took doubles the spacing; one whose layers did puts it back', async (t) => {
  // 0.05 %: the deltas reload past 5 events (of at least 10,000); catch-ups stop at 10, so at 3
  // users of ~3 events: 5 users changed need a reload.
  const { pool, write, model, lines } = await setUp(t, { maxDeltaShare: 0.0005 });
  await write(users(20), 3);
  // Written while the first load holds its snapshot: its layers are behind as soon as they land.
  let written: Promise<void> | undefined;
  await slowFirstLoad(pool, model, async () => {
    written = write(users(5));
    await waitFor(
      'the write to wait on the lock',
      () => waitingOnLock(pool, 'DECLARE model_rows', true),
      60_000,
      20,
    );
  });
  await written;
  // The first question comes later than the load took after it landed: its layers were behind
  // all along, so they bought nothing however long they were held.
  await waitFor('the first load to land', () => lines('read model loaded').length === 1, 60_000, 5);
  const landed = lines('read model loaded')[0];
  await waitFor("the load's duration to pass", () => Date.now() - landed.time > landed.ms!, 60_000, 5);
  assert.equal(await model.ready(P), true, 'reloaded');
  const behind = lines('read model behind');
  assert.deepEqual(
    behind.map((l) => [l.reason, l.spacing]),
    [['too many users changed', 2]],
    'the first catch-up after the slow load gave up: spacing doubled',
  );
  const { previousMs, gap } = loadGap(lines('read model loaded'), 1);
  assert.ok(previousMs >= 500, `the first load took its wait (${previousMs} ms)`);
  assert.ok(
    gap >= 2 * previousMs,
    `the second load started ${gap} ms after the first ended, which took ${previousMs} ms`,
  );

  // The second load's layers catch up (one new user, one event) later than it took after they
  // landed, then a change outgrows them.
  const second = lines('read model loaded')[1];
  await waitFor("the load's duration to pass", () => Date.now() - second.time > second.ms!, 60_000, 5);
  await write(['newcomer']);
  assert.ok((await model.at(P, Number.POSITIVE_INFINITY)) !== undefined, 'caught up');
  assert.deepEqual(
    lines('read model caught up').map((l) => l.users),
    [1],
  );
  await write(users(5));
  assert.equal(await model.ready(P), true, 'reloaded again');
  assert.deepEqual(
    lines('read model behind').map((l) => l.spacing),
    [2, 1],
    'spacing back to once',
  );
});

test('a catch-up that would take the deltas past twice the reload threshold reads no rows: a reload does it', async (t) => {
  // 0.2 %: the deltas reload past 20 events (of at least 10,000), catch-ups stop at 40.
  const { write, model, lines } = await setUp(t, { maxDeltaShare: 0.002 });
  await write(users(100), 10);
  assert.equal(await model.ready(P), true, 'loaded');

  await write(['u0']);
  assert.ok((await model.at(P, Number.POSITIVE_INFINITY)) !== undefined, 'caught up');
  assert.deepEqual(
    lines('read model caught up').map((l) => l.users),
    [1],
    'one user (11 events) re-read: 29 events of room left, 2 users of 10 events',
  );

  await write(users(5, 10));
  assert.equal(await model.at(P, Number.POSITIVE_INFINITY), undefined, 'behind: PostgreSQL answers');
  const [behind] = lines('read model behind');
  assert.ok(behind !== undefined, 'the catch-up gave up');
  assert.equal(behind.reason, 'too many users changed');
  assert.deepEqual([behind.users, behind.maxUsers], [5, 2]);
  assert.equal(lines('read model caught up').length, 1, 'no rows of the 5 users read by a catch-up');
  assert.equal(await model.ready(P), true, 'reloaded');
  assert.equal(lines('read model loaded').length, 2);
  const layers = await model.at(P, 0);
  assert.ok(layers !== undefined);
  assert.equal(layers.count, 1, 'a fresh base');
  assert.ok(layers.models[0].users.find('u14') >= 0);
});

/** The backends of read-model loads (their worker threads' connections: src/query/columnar/load.ts). */
async function loadBackends(pool: pg.Pool): Promise<number[]> {
  const { rows } = await pool.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'tally-read-model-load'",
  );
  return rows.map((r) => r.pid);
}

/**
 * A model whose first load (of 5 users) waits on a lock of tally.events: the caller releases
 * `lock` (in a finally: the pool's end would wait for it).
 */
async function loadHeldOnLock(t: TestContext) {
  const set = await setUp(t);
  await set.write(users(5));
  const lock = await lockTable(set.pool, 'tally.events');
  try {
    assert.equal(await set.model.at(P), undefined, 'the question starts the load');
    await waitFor(
      'the load to wait on the lock',
      () => waitingOnLock(set.pool, 'DECLARE model_rows'),
      60_000,
      20,
    );
  } catch (err) {
    await lock.release();
    throw err;
  }
  return { ...set, lock };
}

test('a load runs on a connection of its own, which stop() ends at once, mid-read', async (t) => {
  const { pool, model, lock } = await loadHeldOnLock(t);
  try {
    assert.equal((await loadBackends(pool)).length, 1, 'the load reads on its own connection');
    // The load cannot read past the lock: stop() resolves without it (its thread is ended).
    await model.stop();
  } finally {
    await lock.release();
  }
  // A backend waiting on a lock notices its client gone only once it has the lock.
  await waitFor(
    'the load connection to close',
    async () => (await loadBackends(pool)).length === 0,
    60_000,
    20,
  );
});

test('a load whose connection fails is logged; PostgreSQL answers, and a load after the backoff lands', async (t) => {
  const { pool, model, lines, lock } = await loadHeldOnLock(t);
  try {
    const [pid] = await loadBackends(pool);
    await pool.query('SELECT pg_terminate_backend($1)', [pid]);
    await waitFor(
      'the failure to be logged',
      () => lines('read model: load failed').length === 1,
      60_000,
      20,
    );
    assert.equal(await model.at(P, 0), undefined, 'no model: PostgreSQL answers');
  } finally {
    await lock.release();
  }
  // Questions within the backoff start nothing; the first one after it starts the load that lands.
  await waitFor('a model after the backoff', async () => (await model.at(P, 0)) !== undefined, 60_000, 100);
  assert.equal(lines('read model loaded').length, 1);
  assert.equal(lines('read model: load failed').length, 1, 'one failure, logged once');
});
