import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  firstInstantOf,
  nextPeriod,
  periodStart,
  periodStarts,
  type RetentionPeriod,
} from '../../../src/query/product/periods.ts';
import { refNextPeriod, refPeriodStart } from './retention-reference.ts';

/**
 * Local period starts (src/query/product/periods.ts) by hand across DST changes, odd offsets,
 * month lengths and year ends, and against the reference that reads local dates instant by
 * instant (retention-reference.ts) at random instants, many of them near an offset change.
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const at = (iso: string) => Date.parse(iso);
const iso = (t: number) => new Date(t).toISOString();

function assertPeriod(t: string, period: RetentionPeriod, tz: string, start: string, next: string): void {
  const s = periodStart(at(t), period, tz);
  assert.equal(iso(s), start, `${period} of ${t} in ${tz}: start`);
  assert.equal(iso(nextPeriod(s, period, tz)), next, `${period} of ${t} in ${tz}: next`);
}

test('days are local midnight to midnight: 23 and 25 hours on DST days', () => {
  // Berlin springs forward on 2026-03-29 at 02:00 and falls back on 2026-10-25 at 03:00.
  assertPeriod(
    '2026-03-29T12:00:00Z',
    'day',
    'Europe/Berlin',
    '2026-03-28T23:00:00.000Z',
    '2026-03-29T22:00:00.000Z',
  );
  assertPeriod(
    '2026-10-25T12:00:00Z',
    'day',
    'Europe/Berlin',
    '2026-10-24T22:00:00.000Z',
    '2026-10-25T23:00:00.000Z',
  );
  // New York: 2026-03-08 and 2026-11-01 at 02:00.
  assertPeriod(
    '2026-03-08T12:00:00Z',
    'day',
    'America/New_York',
    '2026-03-08T05:00:00.000Z',
    '2026-03-09T04:00:00.000Z',
  );
  assertPeriod(
    '2026-11-01T12:00:00Z',
    'day',
    'America/New_York',
    '2026-11-01T04:00:00.000Z',
    '2026-11-02T05:00:00.000Z',
  );
  // The last instant of a day is in it; its next millisecond is not.
  assertPeriod(
    '2026-03-09T03:59:59.999Z',
    'day',
    'America/New_York',
    '2026-03-08T05:00:00.000Z',
    '2026-03-09T04:00:00.000Z',
  );
  assertPeriod(
    '2026-03-09T04:00:00.000Z',
    'day',
    'America/New_York',
    '2026-03-09T04:00:00.000Z',
    '2026-03-10T04:00:00.000Z',
  );
});

test('a 30-minute offset: Kolkata days start at 18:30 UTC', () => {
  assertPeriod(
    '2026-01-05T18:29:59.999Z',
    'day',
    'Asia/Kolkata',
    '2026-01-04T18:30:00.000Z',
    '2026-01-05T18:30:00.000Z',
  );
  assertPeriod(
    '2026-01-05T18:30:00.000Z',
    'day',
    'Asia/Kolkata',
    '2026-01-05T18:30:00.000Z',
    '2026-01-06T18:30:00.000Z',
  );
  assertPeriod(
    '2026-01-01T00:00:00Z',
    'month',
    'Asia/Kolkata',
    '2025-12-31T18:30:00.000Z',
    '2026-01-31T18:30:00.000Z',
  );
  // Lord Howe moves by 30 minutes: its DST day has 23.5 hours.
  assertPeriod(
    '2026-10-04T00:00:00Z',
    'day',
    'Australia/Lord_Howe',
    '2026-10-03T13:30:00.000Z',
    '2026-10-04T13:00:00.000Z',
  );
});

test('midnight skipped or doubled: the day starts at its first instant', () => {
  // Sao Paulo began DST at 00:00 on 2018-11-04: the day starts at 01:00 local.
  assertPeriod(
    '2018-11-04T12:00:00Z',
    'day',
    'America/Sao_Paulo',
    '2018-11-04T03:00:00.000Z',
    '2018-11-05T02:00:00.000Z',
  );
  // Havana falls back from 01:00 to 00:00 on 2026-11-01: midnight twice, the first one counts.
  assertPeriod(
    '2026-11-01T12:00:00Z',
    'day',
    'America/Havana',
    '2026-11-01T04:00:00.000Z',
    '2026-11-02T05:00:00.000Z',
  );
  assertPeriod(
    '2026-11-01T04:30:00Z',
    'day',
    'America/Havana',
    '2026-11-01T04:00:00.000Z',
    '2026-11-02T05:00:00.000Z',
  );
  // Samoa skipped 2011-12-30 entirely: the day after the 29th is the 31st.
  assertPeriod(
    '2011-12-29T12:00:00Z',
    'day',
    'Pacific/Apia',
    '2011-12-29T10:00:00.000Z',
    '2011-12-30T10:00:00.000Z',
  );
  assertPeriod(
    '2011-12-30T10:00:00Z',
    'day',
    'Pacific/Apia',
    '2011-12-30T10:00:00.000Z',
    '2011-12-31T10:00:00.000Z',
  );
});

test('weeks start on Monday and cross years; months have their own lengths', () => {
  // 2026-01-01 is a Thursday: its week began on Monday 2025-12-29.
  assertPeriod('2026-01-01T12:00:00Z', 'week', 'UTC', '2025-12-29T00:00:00.000Z', '2026-01-05T00:00:00.000Z');
  assertPeriod(
    '2026-01-01T12:00:00Z',
    'week',
    'Europe/Berlin',
    '2025-12-28T23:00:00.000Z',
    '2026-01-04T23:00:00.000Z',
  );
  // A Sunday evening in New York is Monday in UTC: still the week before.
  assertPeriod(
    '2026-01-05T03:00:00Z',
    'week',
    'America/New_York',
    '2025-12-29T05:00:00.000Z',
    '2026-01-05T05:00:00.000Z',
  );
  // A week holding the spring change is 167 hours.
  assertPeriod(
    '2026-03-26T00:00:00Z',
    'week',
    'Europe/Berlin',
    '2026-03-22T23:00:00.000Z',
    '2026-03-29T22:00:00.000Z',
  );
  assertPeriod(
    '2028-02-15T00:00:00Z',
    'month',
    'UTC',
    '2028-02-01T00:00:00.000Z',
    '2028-03-01T00:00:00.000Z',
  );
  assertPeriod(
    '2027-02-15T00:00:00Z',
    'month',
    'UTC',
    '2027-02-01T00:00:00.000Z',
    '2027-03-01T00:00:00.000Z',
  );
  assertPeriod(
    '2026-03-15T00:00:00Z',
    'month',
    'Europe/Berlin',
    '2026-02-28T23:00:00.000Z',
    '2026-03-31T22:00:00.000Z',
  );
  assertPeriod(
    '2026-12-31T23:30:00Z',
    'month',
    'Europe/Berlin',
    '2026-12-31T23:00:00.000Z',
    '2027-01-31T23:00:00.000Z',
  );
  assertPeriod(
    '2026-04-30T12:00:00Z',
    'month',
    'America/New_York',
    '2026-04-01T04:00:00.000Z',
    '2026-05-01T04:00:00.000Z',
  );
});

test('periodStarts lists every period meeting [from, to), then the start of the next', () => {
  const starts = periodStarts(at('2026-03-28T12:00:00Z'), at('2026-03-30T00:00:00Z'), 'day', 'Europe/Berlin');
  assert.deepEqual(starts.map(iso), [
    '2026-03-27T23:00:00.000Z',
    '2026-03-28T23:00:00.000Z',
    '2026-03-29T22:00:00.000Z',
    '2026-03-30T22:00:00.000Z',
  ]);
  // A range ending on a period start does not meet that period.
  assert.equal(periodStarts(at('2026-01-05T00:00:00Z'), at('2026-01-12T00:00:00Z'), 'week', 'UTC').length, 2);
  assert.deepEqual(periodStarts(5, 5, 'day', 'UTC'), []);
});

const ZONES = [
  'UTC',
  'Europe/Berlin',
  'America/New_York',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'America/St_Johns',
  'America/Sao_Paulo',
  'America/Havana',
  'America/Santiago',
  'Asia/Beirut',
  'Asia/Tehran',
  'Australia/Lord_Howe',
  'Pacific/Chatham',
  'Pacific/Apia',
];

/** Offset changes of the zones above, many at or near midnight. */
const CHANGES = [
  '2026-03-29T01:00Z',
  '2026-10-25T01:00Z',
  '2026-03-08T07:00Z',
  '2026-11-01T06:00Z',
  '2018-11-04T03:00Z',
  '2019-02-17T02:00Z',
  '2026-03-08T05:00Z',
  '2026-11-01T05:00Z',
  '2026-04-05T03:00Z',
  '2026-09-06T04:00Z',
  '2026-03-28T22:00Z',
  '2026-10-24T21:00Z',
  '2022-03-21T20:30Z',
  '2022-09-21T19:30Z',
  '2026-04-04T15:00Z',
  '2026-10-03T15:30Z',
  '2026-04-04T14:00Z',
  '2026-09-26T14:00Z',
  '2011-12-30T10:00Z',
  '2026-03-08T05:30Z',
].map(at);

const instantArb = fc.oneof(
  // Anywhere from 1971 to 2037.
  fc.integer({ min: Date.UTC(1971, 0, 1), max: Date.UTC(2037, 11, 31) }),
  // Within days of an offset change, often on an hour or a quarter of one, or beside it.
  fc
    .tuple(
      fc.constantFrom(...CHANGES),
      fc.integer({ min: -3 * 96, max: 3 * 96 }),
      fc.constantFrom(0, 0, -1, 1, 12_345),
    )
    .map(([change, quarters, ms]) => change + quarters * 15 * 60_000 + ms),
  // Anywhere within weeks of one.
  fc.tuple(fc.constantFrom(...CHANGES), fc.integer({ min: -40 * DAY, max: 40 * DAY })).map(([c, d]) => c + d),
);

test('period starts and their successors equal the local-date reference in any zone', () => {
  fc.assert(
    fc.property(
      instantArb,
      fc.constantFrom<RetentionPeriod>('day', 'week', 'month'),
      fc.constantFrom(...ZONES),
      (t, period, tz) => {
        const start = periodStart(t, period, tz);
        assert.equal(iso(start), iso(refPeriodStart(t, period, tz)), 'start');
        assert.ok(start <= t);
        const next = nextPeriod(start, period, tz);
        assert.equal(iso(next), iso(refNextPeriod(start, period, tz)), 'next');
        assert.ok(t < next);
        assert.equal(periodStart(next, period, tz), next, 'a start starts its own period');
      },
    ),
    { numRuns: 600 },
  );
});

/** A made-up zone whose offset changes once, at `change`, from `before` to `after` (ms). */
const zoneOf = (change: number, before: number, after: number) => (t: number) =>
  t < change ? before : after;

test('made-up zones: midnight inside a gap, twice in an overlap, or at its edge', () => {
  const date = Date.UTC(2030, 0, 10);
  // Clocks jump from 23:30 to 01:30: the date begins at the jump.
  const jump = date - 30 * 60_000 - HOUR;
  assert.equal(firstInstantOf(date, zoneOf(jump, HOUR, 3 * HOUR)), jump);
  // Clocks go back from 00:30 to 23:30: the first midnight.
  const back = date + 30 * 60_000 - 2 * HOUR;
  assert.equal(firstInstantOf(date, zoneOf(back, 2 * HOUR, HOUR)), date - 2 * HOUR);
  // A jump at midnight itself.
  assert.equal(firstInstantOf(date, zoneOf(date - HOUR, HOUR, 2 * HOUR)), date - HOUR);
});

test('made-up zones: the first instant of a date equals a minute-by-minute search', () => {
  const quarter = 15 * 60_000;
  fc.assert(
    fc.property(
      fc.integer({ min: -3, max: 3 }).map((d) => Date.UTC(2030, 0, 10) + d * DAY),
      fc.integer({ min: -48, max: 56 }),
      fc.integer({ min: -12, max: 12 }).filter((n) => n !== 0),
      fc.integer({ min: -2 * DAY, max: 2 * DAY }),
      (date, before, shift, at) => {
        const offset = zoneOf(date + at, before * quarter, (before + shift) * quarter);
        const local = (t: number) => Math.floor((t + offset(t)) / DAY) * DAY;
        let want = Infinity;
        for (let t = date - 20 * HOUR; t <= date + 20 * HOUR; t += 60_000) {
          if (local(t) >= date) {
            want = t;
            break;
          }
        }
        // The change itself, off the minute grid.
        if (local(date + at) >= date && date + at < want) want = date + at;
        assert.equal(firstInstantOf(date, offset), want);
      },
    ),
    { numRuns: 500 },
  );
});
