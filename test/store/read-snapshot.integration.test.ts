import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { readSnapshot } from '../../src/store/read-snapshot.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';

/** One answer's statements see one snapshot, read-only, and the client goes back to the pool. */
test('readSnapshot: statements see one snapshot (a commit in between is invisible), read-only, released on error', async (t) => {
  const db = await startTestPostgres(t);
  await db.pool.query('CREATE TABLE snap (n int)');
  await db.pool.query('INSERT INTO snap VALUES (1)');
  const pool = new pg.Pool({ connectionString: db.connectionString, max: 1 });
  pool.on('error', () => undefined);
  const count = async (q: { query: pg.Pool['query'] }) =>
    Number((await q.query<{ n: string }>('SELECT count(*) AS n FROM snap')).rows[0].n);

  const seen = await readSnapshot(pool, async (snap) => {
    const before = await count(snap);
    await db.pool.query('INSERT INTO snap VALUES (2)'); // another connection commits
    // Started together, as the services do: queued on the one client, same snapshot.
    const [after, again] = await Promise.all([count(snap), count(snap)]);
    return [before, after, again];
  });
  assert.deepEqual(seen, [1, 1, 1]);
  assert.equal(await count(pool), 2, 'a new answer sees the commit');

  await assert.rejects(
    readSnapshot(pool, (snap) => snap.query('INSERT INTO snap VALUES (3)')),
    /read-only transaction/,
  );
  await assert.rejects(
    readSnapshot(pool, async () => {
      throw new Error('reader failed');
    }),
    /reader failed/,
  );
  // max: 1, so this only answers if the failed snapshots gave their client back, rolled back.
  const { rows } = await pool.query<{ state: string }>(
    "SELECT current_setting('transaction_isolation') AS state",
  );
  assert.equal(rows[0].state, 'read committed');
  assert.equal(await count(pool), 2);
  await pool.end();
});
