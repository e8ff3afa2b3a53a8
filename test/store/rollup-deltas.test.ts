import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { TallyEvent } from '../../src/event/types.ts';
import { LEVELS, rollupDeltas } from '../../src/store/rollup-deltas.ts';

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
    service: null,
    properties: null,
    ...fields,
  };
}

type Tuple = [project: string, level: number, bucket: number, name: string, page: string];

function compareTuples(a: Tuple, b: Tuple): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return 0;
}

/** The deltas by the definition: one row per distinct tuple, counted, in tuple order. */
function expected(events: readonly TallyEvent[]) {
  const count = (tuples: Tuple[]) => {
    const rows = new Map<string, { t: Tuple; n: number }>();
    for (const t of tuples) {
      const k = JSON.stringify(t);
      const row = rows.get(k);
      if (row) row.n += 1;
      else rows.set(k, { t, n: 1 });
    }
    return [...rows.values()].sort((a, b) => compareTuples(a.t, b.t));
  };
  const per = (f: (e: TallyEvent, level: number, bucket: number) => Tuple | undefined) =>
    count(
      events.flatMap((e) =>
        LEVELS.map(({ level, ms }) => f(e, level, Math.floor(e.ts / ms) * ms)).filter((t) => t !== undefined),
      ),
    );
  const types = per((e, l, b) => [e.project, l, b, e.type, '']);
  const pages = per((e, l, b) => (e.pageUrl === null ? undefined : [e.project, l, b, e.type, e.pageUrl]));
  const users = per((e, l, b) => [e.project, l, b, e.userId, '']);
  return {
    events: {
      project: types.map((r) => r.t[0]),
      level: types.map((r) => r.t[1]),
      bucket: types.map((r) => r.t[2]),
      type: types.map((r) => r.t[3]),
      count: types.map((r) => r.n),
    },
    pages: {
      project: pages.map((r) => r.t[0]),
      level: pages.map((r) => r.t[1]),
      bucket: pages.map((r) => r.t[2]),
      type: pages.map((r) => r.t[3]),
      pageUrl: pages.map((r) => r.t[4]),
      count: pages.map((r) => r.n),
    },
    users: {
      project: users.map((r) => r.t[0]),
      level: users.map((r) => r.t[1]),
      bucket: users.map((r) => r.t[2]),
      userId: users.map((r) => r.t[3]),
    },
  };
}

test('one row per project, level, bucket and type, page or user, counted, in key order', () => {
  // Few distinct values, so that rows collect several events; strings with quotes, NULs and
  // prefixes of each other, where an order of escaped key strings would differ from this one.
  const text = fc.constantFrom('a', 'a!', 'a"', 'a\u0000b', 'ab', 'é', '\u{1F600}', '');
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          project: fc.constantFrom('shop', 'shop"', 'blog'),
          type: text,
          userId: text,
          pageUrl: fc.option(text, { nil: null }),
          // Minutes, hours and days apart, on and just off their boundaries (a midnight starts a
          // minute, an hour and a day at once).
          ts: fc
            .integer({ min: -2, max: 2 })
            .chain((day) =>
              fc
                .constantFrom(0, 1, 59_999, 60_000, 3_599_999, 3_600_000, 36_000_000, 86_399_999)
                .map((ms) => MIDNIGHT + day * 86_400_000 + ms),
            ),
        }),
        { maxLength: 60 },
      ),
      (fields) => {
        const events = fields.map((f) => event(f));
        assert.deepEqual(rollupDeltas(events), expected(events));
      },
    ),
    { numRuns: 300 },
  );
});

test('the minute, hour and day that start at the same instant are three rows', () => {
  const d = rollupDeltas([event({ ts: MIDNIGHT }), event({ ts: MIDNIGHT + 30_000, pageUrl: '/x' })]);
  assert.deepEqual(d.events.level, [0, 1, 2]);
  assert.deepEqual(d.events.bucket, [MIDNIGHT, MIDNIGHT, MIDNIGHT]);
  assert.deepEqual(d.events.count, [2, 2, 2]);
  assert.deepEqual(d.pages.level, [0, 1, 2]);
  assert.deepEqual(d.pages.count, [1, 1, 1]);
  assert.deepEqual(d.users.level, [0, 1, 2]);
  assert.deepEqual(d.users.bucket, [MIDNIGHT, MIDNIGHT, MIDNIGHT]);
});
