import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { TallyEvent } from '../../src/event/types.ts';
import { KnownUserRows, levelBucketKey } from '../../src/store/known-user-rows.ts';
import { DAY, HOUR, LEVELS, MINUTE } from '../../src/store/levels.ts';
import { rollupUserArgs, writtenUserRows, type UserRowArgs } from '../../src/store/rollup-writes.ts';
import { userKey } from '../../src/store/user-numbers.ts';

const MIDNIGHT = Date.parse('2026-03-01T00:00:00Z');

function event(fields: Partial<TallyEvent> & Pick<TallyEvent, 'ts'>): TallyEvent {
  return {
    project: 'p',
    eventId: 'e',
    type: 'page_view',
    userId: 'u',
    receivedAt: fields.ts,
    pageUrl: null,
    referrer: null,
    sessionId: null,
    userAgent: null,
    country: null,
    service: null,
    properties: null,
    ...fields,
  };
}

type Tuple = [project: string, level: number, bucket: number, user: string];
interface Row {
  t: Tuple;
  num: number;
  /** 0-based indexes of the events deriving the row, in batch order. */
  events: number[];
}

function compareRows(a: Row, b: Row): number {
  for (let i = 0; i < a.t.length; i++) {
    if (a.t[i] < b.t[i]) return -1;
    if (a.t[i] > b.t[i]) return 1;
  }
  return 0;
}

/** A number for every user of `events` but those in `deleted` (null). */
function numbersOf(events: readonly TallyEvent[], deleted: ReadonlySet<string> = new Set()) {
  const numbers = new Map<string, number | null>();
  for (const e of events) {
    const k = userKey(e.project, e.userId);
    if (!numbers.has(k)) numbers.set(k, deleted.has(e.userId) ? null : numbers.size);
  }
  return numbers;
}

/** The rows rollupUserArgs sent, with their events, in tuple order (the order sent does not matter). */
function sent(args: UserRowArgs): Row[] {
  const n = args.userId.length;
  for (const a of [args.project, args.level, args.bucket, args.num, args.from, args.to])
    assert.equal(a.length, n, 'parallel arrays');
  assert.equal(args.to.at(-1) ?? 0, args.event.length, 'the slices cover the event ordinals');
  return args.userId
    .map((u, i) => ({
      t: [args.project[i], args.level[i], args.bucket[i], u] as Tuple,
      num: args.num[i],
      events: args.event.slice(args.from[i] - 1, args.to[i]).map((o) => o - 1),
    }))
    .sort(compareRows);
}

/**
 * The rows by the definition: one per distinct (project, level, bucket, user) of the events that
 * are not bots, not of a deleted user and not known, each with its events in batch order.
 */
function expected(
  events: readonly TallyEvent[],
  numbers: ReadonlyMap<string, number | null>,
  opts: { isBot?: readonly boolean[]; known?: (t: Tuple) => boolean } = {},
): Row[] {
  const rows = new Map<string, Row>();
  events.forEach((e, i) => {
    const num = numbers.get(userKey(e.project, e.userId));
    if (opts.isBot?.[i] === true || num === null || num === undefined) return;
    for (const { level, ms } of LEVELS) {
      const t: Tuple = [e.project, level, Math.floor(e.ts / ms) * ms, e.userId];
      if (opts.known?.(t) === true) continue;
      const key = JSON.stringify(t);
      const row = rows.get(key) ?? { t, num, events: [] };
      row.events.push(i);
      rows.set(key, row);
    }
  });
  return [...rows.values()].sort(compareRows);
}

// Few distinct values, so that rows collect several events; strings with quotes, NULs and
// prefixes of each other.
const text = fc.constantFrom('a', 'a!', 'a"', 'a\u0000b', 'ab', 'é', '\u{1F600}', '');
const events = fc
  .array(
    fc.record({
      project: fc.constantFrom('shop', 'shop"', 'blog'),
      userId: text,
      // Minutes, hours and days apart, on and just off their boundaries (a midnight starts a
      // minute, an hour and a day at once).
      ts: fc
        .integer({ min: -2, max: 2 })
        .chain((day) =>
          fc
            .constantFrom(0, 1, 59_999, 60_000, 3_599_999, 3_600_000, 36_000_000, 86_399_999)
            .map((ms) => MIDNIGHT + day * 86_400_000 + ms),
        ),
      bot: fc.boolean(),
    }),
    { maxLength: 60 },
  )
  .map((items) => ({ events: items.map((f) => event(f)), isBot: items.map((f) => f.bot) }));

test('property: one row per project, level, bucket and user, with its number and the events deriving it', () => {
  fc.assert(
    fc.property(events, ({ events }) => {
      const numbers = numbersOf(events);
      assert.deepEqual(sent(rollupUserArgs(events, numbers, new KnownUserRows())), expected(events, numbers));
    }),
    { numRuns: 300 },
  );
});

test('property: bots, deleted users and known rows derive no row', () => {
  fc.assert(
    fc.property(
      events,
      fc.subarray(['a', 'a!', 'é', '']),
      fc.integer({ min: 0, max: 7 }),
      (batch, gone, seed) => {
        const numbers = numbersOf(batch.events, new Set(gone));
        // A known set: the rows of an earlier batch that were written (every seed-th event fresh).
        const known = new KnownUserRows();
        const earlier = rollupUserArgs(batch.events, numbers, known);
        known.remember(
          writtenUserRows(
            earlier,
            batch.events.map((_e, i) => i % (seed + 1) === 0),
          ),
        );
        const isKnown = (t: Tuple) => known.has(t[0], levelBucketKey(t[1], t[2]), t[3]);
        assert.deepEqual(
          sent(rollupUserArgs(batch.events, numbers, known, batch.isBot)),
          expected(batch.events, numbers, { isBot: batch.isBot, known: isKnown }),
        );
      },
    ),
    { numRuns: 300 },
  );
});

test('the minute, hour and day that start at the same instant are three rows', () => {
  const batch = [event({ ts: MIDNIGHT }), event({ ts: MIDNIGHT + 30_000, pageUrl: '/x' })];
  const args = rollupUserArgs(batch, numbersOf(batch), new KnownUserRows());
  assert.deepEqual(args.level, [MINUTE.level, HOUR.level, DAY.level]);
  assert.deepEqual(args.bucket, [MIDNIGHT, MIDNIGHT, MIDNIGHT]);
  assert.deepEqual(args.event, [1, 2, 1, 2, 1, 2]);
});

test('a user without a number is an error, not a silent skip', () => {
  assert.throws(() => rollupUserArgs([event({ ts: MIDNIGHT })], new Map(), new KnownUserRows()), /no number/);
});

test('only rows with a fresh event are remembered', () => {
  const batch = [event({ ts: MIDNIGHT, userId: 'a' }), event({ ts: MIDNIGHT + 90_000, userId: 'b' })];
  const args = rollupUserArgs(batch, numbersOf(batch), new KnownUserRows());
  const known = new KnownUserRows();
  known.remember(writtenUserRows(args, [false, true]));
  assert.equal(known.has('p', levelBucketKey(MINUTE.level, MIDNIGHT), 'a'), false);
  assert.equal(known.has('p', levelBucketKey(MINUTE.level, MIDNIGHT + 60_000), 'b'), true);
  assert.equal(known.has('p', levelBucketKey(DAY.level, MIDNIGHT), 'b'), true);
  assert.equal(known.size, 3);
});

test('past its bound, the known rows forget the buckets written to least recently', () => {
  const known = new KnownUserRows(10);
  const rows = (minute: number, users: number) => ({
    project: Array<string>(users).fill('p'),
    key: Array<number>(users).fill(levelBucketKey(MINUTE.level, MIDNIGHT + minute * 60_000)),
    userId: Array.from({ length: users }, (_, u) => `u${u}`),
  });
  known.remember(rows(0, 4));
  known.remember(rows(1, 4));
  known.remember(rows(0, 1)); // minute 0 written again: now the most recent
  known.remember(rows(2, 4)); // 12 rows: minute 1, the least recent, goes
  assert.equal(known.size, 8);
  assert.equal(known.has('p', levelBucketKey(MINUTE.level, MIDNIGHT + 60_000), 'u0'), false);
  assert.equal(known.has('p', levelBucketKey(MINUTE.level, MIDNIGHT), 'u3'), true);
  assert.equal(known.has('p', levelBucketKey(MINUTE.level, MIDNIGHT + 120_000), 'u3'), true);
  known.remember(rows(3, 9)); // the others go first
  assert.equal(known.size, 9);
  assert.equal(known.has('p', levelBucketKey(MINUTE.level, MIDNIGHT + 180_000), 'u8'), true);
  // A bucket written by every batch (a busy day) larger than the bound alone is forgotten too:
  // the bound holds.
  known.remember(rows(4, 12));
  assert.ok(known.size <= 10, 'at most the bound remembered');
  assert.equal(known.has('p', levelBucketKey(MINUTE.level, MIDNIGHT + 240_000), 'u11'), false);
});
