import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import type { TallyEvent } from '../../src/event/types.ts';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { bumpDataVersions, DataVersions, VERSIONS_CHANNEL } from '../../src/store/data-versions.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { toTallyEvent } from '../helpers/oracle.ts';
import { eventually, waitFor } from '../helpers/poll.ts';

let nextId = 0;
function event(project: string): TallyEvent {
  const ts = Date.parse('2025-04-01T10:00:00Z');
  return toTallyEvent({ event_id: `dv-${nextId++}`, type: 'click', user_id: 'u', ts }, project);
}

const until = (what: string, ok: () => boolean | Promise<boolean>) => waitFor(what, ok, 20_000, 20);

/** Retries while the pool still hands out connections that died with a stopped server. */
const retrying = <T>(fn: () => Promise<T>) => eventually('a query after the restart', fn, 20_000, 50);

async function stored(pool: pg.Pool, project: string): Promise<number> {
  const { rows } = await pool.query<{ version: string }>(
    'SELECT version FROM tally.data_versions WHERE project = $1',
    [project],
  );
  return rows.length === 0 ? 0 : Number(rows[0].version);
}

test('data versions in memory: commits of other processes arrive, rollbacks do not, a lost listener falls back and recovers', async (t) => {
  const db = await startTestPostgres(t);
  const writer = new BatchWriter({
    pool: db.pool,
    partitions: new RawPartitions(db.pool, undefined),
    storeRaw: true,
  });
  // The reader has its own pool, as a `tally query` process would.
  const readerPool = new pg.Pool({ connectionString: db.connectionString, max: 2 });
  readerPool.on('error', () => undefined);
  t.after(() => readerPool.end());
  const versions = new DataVersions(readerPool);
  t.after(() => versions.stop());
  assert.equal(await versions.current('a'), 0, 'read from PostgreSQL before the listener is up');
  versions.start();
  await until('the listener to be in sync', () => versions.live);

  // Another writer's commit reaches this process without a query per read.
  await writer.write({ events: [event('a'), event('b')] });
  // One notification per project; they may arrive in separate reads of the socket.
  await until('project a at version 1', async () => (await versions.current('a')) === 1);
  await until('project b at version 1', async () => (await versions.current('b')) === 1);
  assert.equal(await versions.current('never-written'), 0);

  // A bump whose transaction rolls back never arrives.
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(
      `WITH v AS (UPDATE tally.data_versions SET version = version + 1 WHERE project = 'a' RETURNING version)
       SELECT pg_notify('${VERSIONS_CHANNEL}', version || ' a') FROM v`,
    );
    await client.query('ROLLBACK');
  } finally {
    client.release();
  }
  await writer.write({ events: [event('b')] });
  await until('project b at version 2', async () => (await versions.current('b')) === 2);
  assert.equal(await versions.current('a'), 1, 'the rolled-back bump is not seen');
  assert.equal(versions.live, true);

  // PostgreSQL goes away: the listener is lost, and it comes back in sync with what was
  // committed meanwhile (no notification of those bumps ever reached it).
  await db.stop();
  await until('the listener to notice', () => !versions.live);
  await db.start();
  await retrying(() => writer.write({ events: [event('a')] }));
  assert.equal(await retrying(() => stored(db.pool, 'a')), 2);
  // Whether the listener is back yet or not, the answer becomes the stored version: read from
  // PostgreSQL while it is not, from the commit's notification (a moment later) once it is.
  await until('project a at version 2', async () => (await retrying(() => versions.current('a'))) === 2);
  await until('the listener to be back', () => versions.live);
  await writer.write({ events: [event('a')] });
  await until('project a at version 3', async () => (await versions.current('a')) === 3);

  // The listening session is killed and a bump commits before it reconnects: the bump's
  // notification is lost, and the read of every version on reconnect makes up for it.
  await db.pool.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tally-versions'`,
  );
  await writer.write({ events: [event('a')] });
  await until('the listener to notice', () => !versions.live);
  await until('the listener to be back', () => versions.live);
  assert.equal(await versions.current('a'), 4, 'in sync with the bump it was never notified of');
});

test('data versions: observe() (the writer in the same process) is seen at once, and versions never go back', async (t) => {
  const db = await startTestPostgres(t);
  const versions = new DataVersions(db.pool);
  t.after(() => versions.stop());
  versions.start();
  await until('the listener to be in sync', () => versions.live);
  const writer = new BatchWriter({
    pool: db.pool,
    partitions: new RawPartitions(db.pool, undefined),
    storeRaw: true,
    onVersions: (v) => versions.observe(v),
  });
  for (let i = 1; i <= 5; i++) {
    await writer.write({ events: [event('p')] });
    // No waiting: read-your-writes within one process.
    assert.equal(await versions.current('p'), i);
  }
  versions.observe(new Map([['p', 2]]));
  assert.equal(await versions.current('p'), 5);
});

test('bumpDataVersions: the given projects (a new one starts at 1) or all, announced on commit only', async (t) => {
  const db = await startTestPostgres(t);
  const listener = new pg.Client({ connectionString: db.connectionString });
  listener.on('error', () => undefined);
  await listener.connect();
  t.after(() => listener.end());
  const heard: string[] = [];
  listener.on('notification', (n) => heard.push(n.payload ?? ''));
  await listener.query(`LISTEN ${VERSIONS_CHANNEL}`);

  // Duplicates and any order: each project once.
  await bumpDataVersions(db.pool, ['b', 'a', 'b']);
  await bumpDataVersions(db.pool, ['b']);
  assert.deepEqual([await stored(db.pool, 'a'), await stored(db.pool, 'b')], [1, 2]);
  await bumpDataVersions(db.pool, 'all');
  assert.deepEqual([await stored(db.pool, 'a'), await stored(db.pool, 'b')], [2, 3]);
  assert.equal(await stored(db.pool, 'c'), 0, "'all' creates no project");

  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    await bumpDataVersions(client, ['a']);
    await client.query('ROLLBACK');
  } finally {
    client.release();
  }
  // Notifications arrive in commit order: once a sentinel bump committed after the ROLLBACK is
  // heard, anything the rolled-back bump had announced would have been heard before it.
  await bumpDataVersions(db.pool, ['sentinel']);
  await until('the sentinel announcement', () => heard.includes('1 sentinel'));
  assert.equal(heard.at(-1), '1 sentinel');
  assert.deepEqual(heard.toSorted(), ['1 a', '1 b', '1 sentinel', '2 a', '2 b', '3 b']);
  assert.equal(await stored(db.pool, 'a'), 2, 'the rolled-back bump is gone');
});
