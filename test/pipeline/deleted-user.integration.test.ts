import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { userHash, userHashKey } from '../../src/store/user-hash.ts';
import { postJson, startTestTally } from '../helpers/embedded-tally.ts';
import { httpBodies } from '../helpers/kafka-process.ts';
import { prng, type OracleEvent } from '../helpers/oracle.ts';
import { assertExactlyOnce } from '../helpers/stored-state.ts';

/** `n` events of users u0…u4 in the last hours. */
function traffic(n: number, seed: number): OracleEvent[] {
  const random = prng(seed);
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    event_id: `${seed}-${i}`,
    type: random() < 0.7 ? 'page_view' : 'click',
    user_id: `u${Math.floor(random() * 5)}`,
    ts: now - 60_000 - Math.floor(random() * 3 * 3_600_000),
    page_url: `/p/${Math.floor(random() * 6)}`,
  }));
}

test('tally start drops a tombstoned user’s events sent over HTTP, a client retry too, and counts them', async (t) => {
  const tally = await startTestTally(t);
  const pool = tally.database.pool;
  // The key tally start generated and stored at its start: the one a deletion hashes with.
  const key = await userHashKey(pool, undefined);
  await pool.query('INSERT INTO tally.user_tombstones (project, user_hash) VALUES ($1, $2)', [
    'default',
    userHash(key, 'u2'),
  ]);
  const events = traffic(500, 41);
  const kept = events.filter((e) => e.user_id !== 'u2');
  const gone = events.length - kept.length;
  const ofU2 = (slice: readonly OracleEvent[]) => slice.filter((e) => e.user_id === 'u2').length;
  for (let i = 0; i < events.length; i += 100) {
    const slice = events.slice(i, i + 100);
    const res = await postJson(`${tally.url}/v1/events`, httpBodies(slice));
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.dropped, ofU2(slice), 'the 202 says how many were dropped');
    assert.equal(res.body.duplicates, 0, 'a dropped event is no duplicate');
  }
  await assertExactlyOnce(pool, kept);
  // A client retrying a request whose answer it lost.
  const goneInRetry = ofU2(events.slice(0, 100));
  const retried = await postJson(`${tally.url}/v1/events`, httpBodies(events.slice(0, 100)));
  assert.equal(retried.status, 202);
  assert.equal(retried.body.dropped, goneInRetry, 'dropped again: a dropped event leaves no dedup key');
  assert.equal(retried.body.duplicates, 100 - goneInRetry);
  await assertExactlyOnce(pool, kept);
  const { rows } = await pool.query<{ n: string }>(
    'SELECT dropped_events AS n FROM tally.user_tombstones WHERE project = $1',
    ['default'],
  );
  assert.equal(Number(rows[0].n), gone + goneInRetry);
  const metric = await tally.metrics.droppedDeletedUserEvents.get();
  assert.equal(metric.values[0].value, gone + goneInRetry);
  const numbers = await pool.query('SELECT 1 FROM tally.user_numbers WHERE user_id = $1', ['u2']);
  assert.equal(numbers.rowCount, 0);
});

interface IngestAnswer {
  accepted: number;
  duplicates: number;
  dropped: number;
}

test('the 202 of tally start: dropped counts a deleted user’s events, duplicates only the re-sent ones of the others, whatever the mix', async (t) => {
  const tally = await startTestTally(t);
  const pool = tally.database.pool;
  const key = await userHashKey(pool, undefined);
  await pool.query('INSERT INTO tally.user_tombstones (project, user_hash) VALUES ($1, $2)', [
    'default',
    userHash(key, 'gone'),
  ]);
  const now = Date.now();
  const send = async (events: { event_id: string; user_id: string }[]): Promise<IngestAnswer> => {
    const res = await postJson(
      `${tally.url}/v1/events`,
      events.map((e) => ({ ...e, type: 'click', timestamp: now - 60_000 })),
    );
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return res.body as unknown as IngestAnswer;
  };

  // The two cases by hand: a deleted user's event, and a re-sent event of a kept user.
  const { dropped, duplicates } = await send([{ event_id: 'one', user_id: 'gone' }]);
  assert.deepEqual({ dropped, duplicates }, { dropped: 1, duplicates: 0 });
  await send([{ event_id: 'two', user_id: 'kept' }]);
  const again = await send([{ event_id: 'two', user_id: 'kept' }]);
  assert.deepEqual({ dropped: again.dropped, duplicates: again.duplicates }, { dropped: 0, duplicates: 1 });

  // Then any mix, against the contract's reference: an event of the deleted user is dropped (each
  // copy, every time: nothing of it is stored); any other is a duplicate when its event_id was
  // stored before, by an earlier request or earlier in this one.
  const stored = new Set<string>(['two']);
  let round = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ id: fc.nat(12), user: fc.constantFrom('gone', 'kept', 'other') }), {
        minLength: 1,
        maxLength: 25,
      }),
      async (picks) => {
        round++;
        // An id names one event, of one user, across the whole run: as a client re-sending it.
        const events = picks.map((p) => ({ event_id: `m-${p.id}-${p.user}`, user_id: p.user }));
        let expectedDropped = 0;
        let expectedDuplicates = 0;
        for (const e of events) {
          if (e.user_id === 'gone') expectedDropped++;
          else if (stored.has(e.event_id)) expectedDuplicates++;
          else stored.add(e.event_id);
        }
        const answer = await send(events);
        assert.equal(answer.accepted, events.length);
        assert.equal(answer.dropped, expectedDropped, `round ${round}: dropped`);
        assert.equal(answer.duplicates, expectedDuplicates, `round ${round}: duplicates`);
      },
    ),
    { numRuns: 40 },
  );
  const counted = await tally.metrics.ingestEvents.get();
  const byOutcome = new Map(counted.values.map((v) => [String(v.labels.outcome), v.value]));
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM tally.event_ids');
  assert.equal(
    byOutcome.get('accepted'),
    Number(rows[0].n),
    'the accepted outcome counts the stored events only',
  );
  assert.ok(byOutcome.get('dropped')! > 0 && byOutcome.get('duplicate')! > 0);
});
