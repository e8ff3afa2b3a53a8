import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { prng, toTallyEvent, type OracleEvent } from '../helpers/oracle.ts';
import { expectedRollups, storedState } from '../helpers/stored-state.ts';

/** A fresh PostgreSQL, a pool of `max` connections to it and a BatchWriter on that pool. */
async function writerOnOwnPool(t: TestContext, max: number): Promise<{ pool: pg.Pool; writer: BatchWriter }> {
  const db = await startTestPostgres(t);
  const pool = new pg.Pool({ connectionString: db.connectionString, max });
  pool.on('error', () => undefined);
  t.after(() => pool.end());
  return {
    pool,
    writer: new BatchWriter({ pool, partitions: new RawPartitions(pool, undefined), storeRaw: true }),
  };
}

// TRICKY: concurrent batches (TALLY_MAX_INFLIGHT_BATCHES > 1) must neither deadlock nor count an
// event twice: each batch below shares event ids with the others, in a different order, and
// they all hit the same few rollup rows.
test('concurrent batches with overlapping event ids and rollup rows count every event exactly once', async (t) => {
  const { pool, writer } = await writerOnOwnPool(t, 8);

  const random = prng(7);
  const base = Date.UTC(2024, 0, 1);
  const oracle: OracleEvent[] = Array.from({ length: 400 }, (_, i) => ({
    event_id: `e-${i}`,
    type: i % 3 === 0 ? 'click' : 'page_view',
    user_id: `u-${Math.floor(random() * 20)}`,
    ts: base + Math.floor(random() * 3) * 60_000 + i,
    page_url: `/p/${Math.floor(random() * 5)}`,
  }));
  const events = oracle.map((e) => toTallyEvent(e));
  const rounds = 5;
  const writers = 6;
  for (let round = 0; round < rounds; round++) {
    // Every writer gets an overlapping window of the events, some reversed or shuffled.
    const slice = events.slice(round * 80, round * 80 + 120);
    const batches = Array.from({ length: writers }, (_, w) => {
      const mine = slice.filter((_e, i) => (i + w) % 3 !== 0);
      if (w % 2 === 1) mine.reverse();
      if (w % 3 === 2) mine.sort(() => random() - 0.5);
      return mine;
    });
    const results = await Promise.all(batches.map((b) => writer.write({ events: b })));
    const freshIds = results.flatMap((r, w) =>
      batches[w].filter((_e, i) => r.fresh[i]).map((e) => e.eventId),
    );
    assert.equal(new Set(freshIds).size, freshIds.length, 'no event is fresh in two batches');
  }
  const covered = events.slice(0, (rounds - 1) * 80 + 120);
  const state = await storedState(pool);
  const expected = expectedRollups(oracle.slice(0, covered.length));
  assert.deepEqual(state.eventIds, covered.map((e) => e.eventId).sort());
  assert.equal(state.raw.length, covered.length);
  assert.deepEqual(state.events, expected.events);
  assert.deepEqual(state.pages, expected.pages);
  assert.deepEqual(state.users, expected.users);
  assert.deepEqual(state.userBits, expected.users, 'the user bit strings hold the same users');
  assert.equal(state.userBitCount, expected.users.length);
});

test('a batch that fails does not affect a concurrent one', async (t) => {
  const { pool, writer } = await writerOnOwnPool(t, 4);
  const base = Date.UTC(2024, 0, 1);
  const good = toTallyEvent({ event_id: 'good', type: 'page_view', user_id: 'u', ts: base, page_url: '/a' });
  // An invalid JSON document in properties makes PostgreSQL reject the whole batch.
  const bad = {
    ...toTallyEvent({ event_id: 'bad', type: 'page_view', user_id: 'u', ts: base }),
    properties: '{',
  };
  const [ok, failed] = await Promise.allSettled([
    writer.write({ events: [good] }),
    writer.write({ events: [bad, { ...good, eventId: 'good-2' }] }),
  ]);
  assert.equal(ok.status, 'fulfilled');
  assert.equal(failed.status, 'rejected');
  const state = await storedState(pool);
  assert.deepEqual(state.eventIds, ['good']);
  assert.deepEqual(state.events, [
    '0|' + base + '|page_view|1',
    '1|' + base + '|page_view|1',
    '2|' + base + '|page_view|1',
  ]);
});

// TRICKY: the writer skips rollup_users rows it knows to be committed (known-user-rows.ts). A
// batch that sent rows and then did not commit must not make them "known": the retry has to
// insert them (and set their user bits) again.
test('a batch that fails at COMMIT leaves no rollup_users rows remembered: the retry stores them', async (t) => {
  const { pool, writer } = await writerOnOwnPool(t, 4);
  const base = Date.UTC(2024, 0, 1);
  const oracle: OracleEvent[] = Array.from({ length: 60 }, (_, i) => ({
    event_id: `e-${i}`,
    type: i % 2 === 0 ? 'click' : 'page_view',
    user_id: `u-${i % 7}`,
    ts: base + (i % 3) * 60_000 + i,
    page_url: `/p/${i % 4}`,
  }));
  const events = oracle.map((e) => toTallyEvent(e));
  await writer.write({ events: events.slice(0, 20) });

  // Fault injection: the next transaction runs every statement, then fails instead of committing.
  const connect = pool.connect.bind(pool);
  let failed = false;
  // TRICKY: pool.query() calls connect(callback); only the promise form (BatchWriter's) is patched.
  pool.connect = ((...args: unknown[]) => {
    if (args.length > 0) return (connect as (...a: unknown[]) => unknown)(...args);
    return patched();
  }) as typeof pool.connect;
  const patched = async () => {
    const client = await connect();
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    client.query = ((...args: unknown[]) => {
      if (!failed && args[0] === 'COMMIT') {
        failed = true;
        return Promise.reject(new Error('injected: connection lost at COMMIT'));
      }
      return query(...args);
    }) as typeof client.query;
    return client;
  };
  await assert.rejects(writer.write({ events: events.slice(20) }));
  assert.ok(failed);

  await writer.write({ events: events.slice(20) });
  const state = await storedState(pool);
  const expected = expectedRollups(oracle);
  assert.equal(state.raw.length, events.length);
  assert.deepEqual(state.events, expected.events);
  assert.deepEqual(state.pages, expected.pages);
  assert.deepEqual(state.users, expected.users);
  assert.deepEqual(state.userBits, expected.users, 'the user bit strings hold the same users');
});
