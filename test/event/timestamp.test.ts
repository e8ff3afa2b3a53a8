import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isDateOnly, parseCanonicalIso, parseDayStart, parseTimestamp } from '../../src/event/timestamp.ts';

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

test('the canonical reading (toISOString form) accepts what toISOString writes and agrees with the general reading and Date.parse', () => {
  // Every instant parseTimestamp accepts, written by toISOString: read by the fast path, exactly.
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Date.UTC(9999, 11, 31, 23, 59, 59, 999) }), (t) => {
      const text = new Date(t).toISOString();
      assert.equal(parseCanonicalIso(text), t);
      assert.equal(parseTimestamp(text), t);
    }),
    { numRuns: 2000 },
  );
  // Strings of the canonical shape with any digits (or a stray character): where the fast path
  // answers, the general reading (the same instant with an explicit +00:00, which the fast path
  // does not take) and Date.parse answer the same; where it does not, parseTimestamp still
  // answers as the general reading does.
  const field = (length: number) =>
    fc
      .stringMatching(new RegExp(`^[0-9]{${length}}$`))
      .chain((d) =>
        fc.oneof(
          { weight: 9, arbitrary: fc.constant(d) },
          { weight: 1, arbitrary: fc.constantFrom(`${d.slice(1)}x`, `${d.slice(1)}/`, `${d.slice(1)}:`) },
        ),
      );
  fc.assert(
    fc.property(
      fc.tuple(
        fc.oneof(
          field(4),
          fc.constantFrom(
            '0000',
            '0099',
            '0100',
            '1600',
            '1900',
            '1969',
            '1970',
            '2000',
            '2024',
            '2100',
            '9999',
          ),
        ),
        fc.oneof(field(2), fc.constantFrom('00', '01', '02', '04', '12', '13')),
        fc.oneof(field(2), fc.constantFrom('00', '01', '28', '29', '30', '31', '32')),
        fc.oneof(field(2), fc.constantFrom('00', '23', '24')),
        fc.oneof(field(2), fc.constantFrom('00', '59', '60')),
        fc.oneof(field(2), fc.constantFrom('00', '59', '60', '61')),
        field(3),
      ),
      ([y, mo, d, h, mi, s, ms]) => {
        const text = `${y}-${mo}-${d}T${h}:${mi}:${s}.${ms}Z`;
        const general = parseTimestamp(`${y}-${mo}-${d}T${h}:${mi}:${s}.${ms}+00:00`);
        const fast = parseCanonicalIso(text);
        if (fast !== undefined) {
          assert.equal(fast, general, text);
          assert.equal(fast, Date.parse(text), text);
        }
        assert.equal(parseTimestamp(text), general, text);
      },
    ),
    {
      numRuns: 5000,
      examples: [
        [['2024', '02', '29', '00', '00', '00', '000']],
        [['2023', '02', '29', '00', '00', '00', '000']],
        [['1900', '02', '29', '00', '00', '00', '000']],
        [['2000', '02', '29', '12', '00', '00', '000']],
        [['1969', '12', '31', '23', '59', '59', '999']],
        [['0099', '01', '01', '00', '00', '00', '000']],
        [['2024', '04', '31', '00', '00', '00', '000']],
        [['2024', '01', '01', '00', '00', '60', '000']],
      ],
    },
  );
  for (const other of [
    '2024-07-01T12:34:56Z',
    '2024-07-01T12:34:56.7890Z',
    '2024-07-01 12:34:56.789Z',
    '2024-07-01T12:34:56.789z',
    '+002024-07-01T12:34:56.789Z',
  ]) {
    assert.equal(parseCanonicalIso(other), undefined, other);
  }
});
