import assert from 'node:assert/strict';
import { test } from 'node:test';
import { zonedBuckets } from '../../src/query/time-buckets.ts';

test('Kolkata day buckets start at 18:30 UTC and carry the offset', () => {
  const from = Date.UTC(2024, 6, 1, 0, 0);
  const to = Date.UTC(2024, 6, 2, 0, 0);
  const buckets = zonedBuckets(from, to, 'day', 'Asia/Kolkata');
  assert.deepEqual(
    buckets.map((b) => [b.label, new Date(b.from).toISOString(), new Date(b.to).toISOString()]),
    [
      ['2024-07-01T00:00:00+05:30', '2024-07-01T00:00:00.000Z', '2024-07-01T18:30:00.000Z'],
      ['2024-07-02T00:00:00+05:30', '2024-07-01T18:30:00.000Z', '2024-07-02T00:00:00.000Z'],
    ],
  );
});

test('hour buckets across a DST change stay one real hour long', () => {
  // Europe/Paris moves from +02:00 to +01:00 at 01:00 UTC on 2024-10-27.
  const buckets = zonedBuckets(Date.UTC(2024, 9, 26, 23), Date.UTC(2024, 9, 27, 3), 'hour', 'Europe/Paris');
  assert.equal(buckets.length, 4);
  assert.ok(buckets.every((b) => b.to - b.from === 3_600_000));
  assert.deepEqual(
    buckets.map((b) => b.label),
    [
      '2024-10-27T01:00:00+02:00',
      '2024-10-27T02:00:00+02:00',
      '2024-10-27T02:00:00+01:00',
      '2024-10-27T03:00:00+01:00',
    ],
  );
});
