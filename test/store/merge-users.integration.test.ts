import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { startTestPostgres } from '../helpers/kafka-process.ts';

/**
 * tally.merge_users (migrations 016 and 030): a minute's sorted, distinct user numbers and a
 * batch's, merged. Both of its ways (a binary insertion for up to 4 new numbers, a sort beyond)
 * against the union computed from scratch; small numbers, so that the two arrays share some.
 */
test('merge_users is the sorted union of two sorted arrays of distinct numbers', async (t) => {
  const db = await startTestPostgres(t);
  const sortedSet = (maxLength: number) =>
    fc
      .uniqueArray(fc.integer({ min: 0, max: 60 }), { maxLength })
      .map((values) => values.sort((x, y) => x - y));
  await fc.assert(
    fc.asyncProperty(sortedSet(50), fc.oneof(sortedSet(4), sortedSet(12)), async (a, b) => {
      const { rows } = await db.pool.query<{ merged: number[] }>(
        'SELECT tally.merge_users($1::int4[], $2::int4[]) AS merged',
        [a, b],
      );
      const want = [...new Set([...a, ...b])].sort((x, y) => x - y);
      assert.deepEqual(rows[0].merged, want, `a ${JSON.stringify(a)}, b ${JSON.stringify(b)}`);
    }),
    { numRuns: 300 },
  );
});
