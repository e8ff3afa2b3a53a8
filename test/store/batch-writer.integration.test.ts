import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { BatchWriter, DEFAULT_SESSION_TIMEOUT_MS } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { rebuildSessions } from '../../src/store/sessions-store.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { pool as runPool, prng, toTallyEvent, type OracleEvent } from '../helpers/oracle.ts';
import { assertVisitsExact } from '../helpers/sessions-setup.ts';
import { expectedRollups, storedState } from '../helpers/stored-state.ts';
import { recordWriteOrder, WRITE_ORDER } from '../helpers/write-order.ts';

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

/** `n` events from 2024-01-01 on, alternating types, cycling through users, minutes and pages. */
function cyclingEvents(n: number, cycle: { users: number; minutes: number; pages: number }): OracleEvent[] {
  const base = Date.UTC(2024, 0, 1);
  return Array.from({ length: n }, (_, i) => ({
    event_id: `e-${i}`,
    type: i % 2 === 0 ? 'click' : 'page_view',
    user_id: `u-${i % cycle.users}`,
    ts: base + (i % cycle.minutes) * 60_000 + i,
    page_url: `/p/${i % cycle.pages}`,
  }));
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

// TRICKY: the writer skips (bucket, user) rows it knows to be committed (known-user-rows.ts). A
// batch that sent rows and then did not commit must not make them "known": the retry has to
// record their users (minute arrays, user bits) again.
test('a batch that fails at COMMIT leaves no (bucket, user) rows remembered: the retry stores them', async (t) => {
  const { pool, writer } = await writerOnOwnPool(t, 4);
  const oracle = cyclingEvents(60, { users: 7, minutes: 3, pages: 4 });
  const events = oracle.map((e) => toTallyEvent(e));
  await writer.write({ events: events.slice(0, 20) });

  // Fault injection: the next batch runs every insert, then fails at COMMIT (a deferred trigger,
  // which PostgreSQL runs at the end of the batch's statement, its implicit transaction).
  await pool.query(`
    CREATE TABLE public.fail_commit (armed boolean NOT NULL);
    INSERT INTO public.fail_commit VALUES (true);
    CREATE FUNCTION public.fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF (SELECT armed FROM public.fail_commit) THEN RAISE EXCEPTION 'injected: failure at COMMIT'; END IF;
      RETURN NULL;
    END $$;
    CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT OR UPDATE ON tally.rollup_minute_users
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.fail_commit();`);
  // All new, then ten stored already.
  await assert.rejects(writer.write({ events: events.slice(20) }), /injected: failure at COMMIT/);
  await assert.rejects(writer.write({ events: events.slice(10) }), /injected: failure at COMMIT/);
  await pool.query('UPDATE public.fail_commit SET armed = false');

  await writer.write({ events: events.slice(10) });
  const state = await storedState(pool);
  const expected = expectedRollups(oracle);
  assert.equal(state.raw.length, events.length);
  assert.deepEqual(state.events, expected.events);
  assert.deepEqual(state.pages, expected.pages);
  assert.deepEqual(state.users, expected.users);
});

/** Records the names of the prepared statements run on `pool`. */
function recordStatementNames(pool: pg.Pool): string[] {
  const names: string[] = [];
  const patched = new WeakSet<pg.PoolClient>();
  pool.on('connect', (client) => {
    if (patched.has(client)) return;
    patched.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    client.query = ((...args: unknown[]) => {
      const name = (args[0] as { name?: string }).name;
      if (name !== undefined) names.push(name);
      return query(...args);
    }) as typeof client.query;
  });
  return names;
}

test('every batch is one statement, with events new, repeated in the batch or stored already: exactly once', async (t) => {
  const { pool, writer } = await writerOnOwnPool(t, 4);
  const names = recordStatementNames(pool);
  let connections = 0;
  pool.on('connect', () => connections++);
  const oracle = cyclingEvents(90, { users: 9, minutes: 4, pages: 5 });
  const events = oracle.map((e) => toTallyEvent(e));

  // New events, one of them twice in the batch: no transaction of its own.
  const first = await writer.write({ events: [...events.slice(0, 40), events[3]] });
  assert.deepEqual(names, ['tally-write-events'], 'one statement');
  assert.equal(first.inserted, 40);
  assert.equal(first.duplicates, 1);
  assert.deepEqual(first.fresh, [...events.slice(0, 40).map(() => true), false]);

  // Half of this batch is stored already: the same statement stores and counts the rest.
  const second = await writer.write({ events: events.slice(20, 90) });
  assert.deepEqual(names, ['tally-write-events', 'tally-write-events'], 'one statement again');
  assert.equal(connections, 1, 'both ran on the one connection, never destroyed');
  assert.equal(second.inserted, 50);
  assert.equal(second.duplicates, 20);
  assert.deepEqual(
    second.fresh,
    events.slice(20, 90).map((_e, i) => i >= 20),
  );
  assert.deepEqual(
    second.insertedEvents.map((e) => e.eventId).sort(),
    events
      .slice(40)
      .map((e) => e.eventId)
      .sort(),
  );

  // All stored already: nothing is counted, and no data version moves.
  const moved: string[] = [];
  const replayWriter = new BatchWriter({
    pool,
    partitions: new RawPartitions(pool, undefined),
    storeRaw: true,
    onVersions: (v) => moved.push(...v.keys()),
  });
  const replay = await replayWriter.write({ events: events.slice(0, 30) });
  assert.equal(replay.inserted, 0);
  assert.deepEqual(
    replay.fresh,
    events.slice(0, 30).map(() => false),
  );
  assert.deepEqual(moved, []);
  // Stored events of one project next to a new one of another: only the other's version moves.
  const other = { ...events[0], project: 'other', eventId: 'o-1' };
  const mixed = await replayWriter.write({ events: [...events.slice(0, 5), other] });
  assert.equal(mixed.inserted, 1);
  assert.deepEqual(moved, ['other']);

  const state = await storedState(pool);
  const expected = expectedRollups(oracle);
  assert.deepEqual(state.eventIds, events.map((e) => e.eventId).sort());
  assert.equal(state.raw.length, events.length, 'no raw row stored twice');
  assert.deepEqual(state.events, expected.events);
  assert.deepEqual(state.pages, expected.pages);
  assert.deepEqual(state.users, expected.users);
});

// The processor's batches: the positions are the fence (DESIGN.md guarantee 2), so the events,
// the dead letters and the positions commit together or not at all.
test('a batch with positions and dead letters commits them with its events; a fenced one stores nothing', async (t) => {
  const { pool, writer } = await writerOnOwnPool(t, 2);
  const oracle = cyclingEvents(20, { users: 3, minutes: 2, pages: 2 });
  const events = oracle.map((e) => toTallyEvent(e));
  const deadLetter = {
    project: 'default',
    reason: 'invalid_json',
    detail: 'not JSON',
    payload: Buffer.from('{'),
    source: 'kafka' as const,
    topic: 'events',
    partition: 0,
    offset: 9,
  };
  const position = { groupId: 'g', topic: 'events', partition: 0, expected: null, next: 10 };
  const ok = await writer.write({
    events: events.slice(0, 10),
    deadLetters: [deadLetter],
    positions: [position],
  });
  assert.equal(ok.inserted, 10);

  // Another consumer moved the partition on: this one's batch must leave no trace.
  await pool.query(`UPDATE tally.positions SET next_offset = 15`);
  await assert.rejects(
    writer.write({
      events: events.slice(10),
      deadLetters: [{ ...deadLetter, offset: 19 }],
      positions: [{ ...position, expected: 10, next: 20 }],
    }),
    { code: 'TALLY_FENCED' },
  );
  const state = await storedState(pool);
  const expected = expectedRollups(oracle.slice(0, 10));
  assert.deepEqual(
    state.eventIds,
    events
      .slice(0, 10)
      .map((e) => e.eventId)
      .sort(),
  );
  assert.equal(state.raw.length, 10);
  assert.deepEqual(state.events, expected.events);
  assert.deepEqual(state.users, expected.users);
  const { rows } = await pool.query<{ offset: string }>('SELECT "offset" FROM tally.dead_letters');
  assert.deepEqual(
    rows.map((r) => Number(r.offset)),
    [9],
  );
  const { rows: positions } = await pool.query<{ next_offset: string }>(
    'SELECT next_offset FROM tally.positions',
  );
  assert.deepEqual(
    positions.map((r) => Number(r.next_offset)),
    [15],
  );
});

// The shared rows (data version, counters, bits) are wanted by every concurrent batch: a batch
// locks them last, after the dedup keys, the raw rows and the visits (migration 024), whether its
// events are all new or not, with or without positions.
test('a batch inserts keys, raw rows and visits before it locks the data version', async (t) => {
  const { pool, writer } = await writerOnOwnPool(t, 2);
  const order = await recordWriteOrder(pool);
  const base = Date.UTC(2024, 0, 1);
  const events = Array.from({ length: 40 }, (_, i) =>
    toTallyEvent({ event_id: `e-${i}`, type: 'click', user_id: `u-${i}`, ts: base + i, page_url: '/' }),
  );

  await writer.write({ events: events.slice(0, 20) });
  assert.deepEqual(await order(), WRITE_ORDER, 'all new');
  await writer.write({ events: events.slice(10, 30) });
  assert.deepEqual(await order(), WRITE_ORDER, 'some stored already');
  await writer.write({
    events: events.slice(25),
    positions: [{ groupId: 'g', topic: 'events', partition: 0, expected: null, next: 40 }],
  });
  assert.deepEqual(await order(), WRITE_ORDER, 'with positions');
});

// TRICKY: a batch takes its visits' locks before the version row (migration 024) and a rebuild
// the version row before the visits' lock; a rebuild must therefore wait for the project's batches
// in flight (lock 741121, sessions-store.ts), or a batch and a rebuild deadlock (PostgreSQL aborts
// one after deadlock_timeout).
test('batches in flight and rebuilds of their visits never deadlock, and the visits end exact', async (t) => {
  const { pool, writer } = await writerOnOwnPool(t, 8);
  const random = prng(11);
  const base = Date.UTC(2024, 0, 1);
  // A few users, minutes apart: every batch refreshes visits that the others touch too.
  const batches = Array.from({ length: 120 }, (_, b) =>
    Array.from({ length: 5 + Math.floor(random() * 20) }, (_, i) =>
      toTallyEvent({
        event_id: `b${b}-${i}`,
        type: 'page_view',
        user_id: `u-${Math.floor(random() * 8)}`,
        ts: base + Math.floor(random() * 600) * 60_000,
        page_url: '/',
      }),
    ),
  );
  await runPool(
    batches.map((batch, b) => async () => {
      if (b % 6 === 3) await rebuildSessions(pool, 'default', DEFAULT_SESSION_TIMEOUT_MS);
      await writer.write({ events: batch });
    }),
    4,
  );
  await assertVisitsExact(pool, 'default', DEFAULT_SESSION_TIMEOUT_MS);
});

// Page numbers (migration 016) come from a sequence: a batch draws numbers for its new pages
// only, or the int4 ids would run out at a high rate.
test('pages already numbered draw no new number', async (t) => {
  const { pool, writer } = await writerOnOwnPool(t, 2);
  const base = Date.UTC(2024, 0, 1);
  const batch = (from: number) =>
    Array.from({ length: 30 }, (_, i) =>
      toTallyEvent({
        event_id: `p-${from + i}`,
        type: 'page_view',
        user_id: `u-${i}`,
        ts: base + i,
        page_url: `/p/${i % 5}`,
      }),
    );
  const drawn = async () =>
    Number((await pool.query<{ n: string }>('SELECT last_value AS n FROM tally.page_urls_id_seq')).rows[0].n);
  await writer.write({ events: batch(0) });
  const after = await drawn();
  await writer.write({ events: batch(100) });
  await writer.write({ events: batch(200) });
  assert.equal(await drawn(), after);
  assert.equal((await pool.query('SELECT 1 FROM tally.page_urls')).rowCount, 5);
});
