import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { prng, toTallyEvent, type OracleEvent } from '../helpers/oracle.ts';
import { expectedRollups, storedState } from '../helpers/stored-state.ts';

// TRICKY: concurrent batches (TALLY_MAX_INFLIGHT_BATCHES > 1) must neither deadlock nor count an
// event twice: each batch below shares event ids with the others, in a different order, and
// they all hit the same few rollup rows.
test('concurrent batches with overlapping event ids and rollup rows count every event exactly once', async (t) => {
  const db = await startTestPostgres(t);
  const pool = new pg.Pool({ connectionString: db.connectionString, max: 8 });
  pool.on('error', () => undefined);
  t.after(() => pool.end());
  const writer = new BatchWriter({ pool, partitions: new RawPartitions(pool, undefined), storeRaw: true });

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
  const db = await startTestPostgres(t);
  const pool = new pg.Pool({ connectionString: db.connectionString, max: 4 });
  pool.on('error', () => undefined);
  t.after(() => pool.end());
  const writer = new BatchWriter({ pool, partitions: new RawPartitions(pool, undefined), storeRaw: true });
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
