import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDateOnly, parseDayStart, parseTimestamp } from '../../src/event/timestamp.ts';

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

test('a date-only value is the start of that day in the given zone', () => {
  assert.equal(parseDayStart('2026-12-01', 'UTC'), Date.UTC(2026, 11, 1));
  assert.equal(parseDayStart('2026-12-01', 'Asia/Kolkata'), Date.UTC(2026, 10, 30, 18, 30));
  assert.equal(parseDayStart('2026-12-01', 'America/Los_Angeles'), Date.UTC(2026, 11, 1, 8));
  for (const bad of [
    '2026-02-30',
    '2026-13-01',
    '2026-00-01',
    '2026-01-00',
    '2026-1-01',
    '2026-01-01T00:00:00Z',
  ])
    assert.equal(parseDayStart(bad, 'UTC'), undefined, bad);
  assert.equal(parseDayStart('2026-12-01', 'Mars/Olympus'), undefined);
  assert.equal(isDateOnly('2026-02-30'), true);
  assert.equal(isDateOnly('2026-02-03T00:00'), false);
});
