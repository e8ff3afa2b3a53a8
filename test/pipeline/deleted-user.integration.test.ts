import assert from 'node:assert/strict';
import { test } from 'node:test';
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
  for (let i = 0; i < events.length; i += 100) {
    const res = await postJson(`${tally.url}/v1/events`, httpBodies(events.slice(i, i + 100)));
    assert.equal(res.status, 202, JSON.stringify(res.body));
  }
  await assertExactlyOnce(pool, kept);
  // A client retrying a request whose answer it lost.
  const retried = await postJson(`${tally.url}/v1/events`, httpBodies(events.slice(0, 100)));
  assert.equal(retried.status, 202);
  await assertExactlyOnce(pool, kept);
  const goneInRetry = events.slice(0, 100).filter((e) => e.user_id === 'u2').length;
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
