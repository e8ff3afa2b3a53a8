import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTimestamp } from '../../src/event/timestamp.ts';

test('parses ISO-8601 with Z, offsets, fractions and no zone (UTC)', () => {
  assert.equal(parseTimestamp('2024-07-01T12:34:56Z'), Date.UTC(2024, 6, 1, 12, 34, 56));
  assert.equal(parseTimestamp('2024-07-01T12:34:56.789Z'), Date.UTC(2024, 6, 1, 12, 34, 56, 789));
  assert.equal(parseTimestamp('2024-07-01T18:04:56+05:30'), Date.UTC(2024, 6, 1, 12, 34, 56));
  assert.equal(parseTimestamp('2024-07-01T07:34:56-0500'), Date.UTC(2024, 6, 1, 12, 34, 56));
  assert.equal(parseTimestamp('2024-07-01T12:34:56'), Date.UTC(2024, 6, 1, 12, 34, 56));
  assert.equal(parseTimestamp('2025-11-05T20:00:00Z'), Date.UTC(2025, 10, 5, 20));
});

test('accepts epoch milliseconds', () => {
  assert.equal(parseTimestamp(1719837296000), 1719837296000);
});

test('rejects what is not a real time', () => {
  for (const bad of [
    '',
    'yesterday',
    '2024-02-31T00:00:00Z',
    '2024-13-01T00:00:00Z',
    '2024-07-01',
    '2024-07-01T25:00:00Z',
    -1,
    Number.NaN,
    Infinity,
    true,
    {},
    null,
  ]) {
    assert.equal(parseTimestamp(bad), undefined, `should reject ${JSON.stringify(bad)}`);
  }
});
