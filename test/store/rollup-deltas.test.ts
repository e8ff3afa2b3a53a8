import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { TallyEvent } from '../../src/event/types.ts';
import { DAY, HOUR, LEVELS, MINUTE } from '../../src/store/levels.ts';
import { rollupUserRows } from '../../src/store/rollup-deltas.ts';

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

function compareTuples(a: Tuple, b: Tuple): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return 0;
}

/**
 * The user rows by the definition: one row per distinct tuple, in tuple order, each with the
 * indexes of the events that derive it, in batch order.
 */
function expected(events: readonly TallyEvent[]) {
  const rows = new Map<string, { t: Tuple; events: number[] }>();
  events.forEach((e, i) => {
    for (const { level, ms } of LEVELS) {
      const t: Tuple = [e.project, level, Math.floor(e.ts / ms) * ms, e.userId];
      const key = JSON.stringify(t);
      const row = rows.get(key) ?? { t, events: [] };
      row.events.push(i);
      rows.set(key, row);
    }
  });
  const users = [...rows.values()].sort((a, b) => compareTuples(a.t, b.t));
  return {
    project: users.map((r) => r.t[0]),
    level: users.map((r) => r.t[1]),
    bucket: users.map((r) => r.t[2]),
    userId: users.map((r) => r.t[3]),
    events: users.map((r) => r.events),
  };
}

test('one row per project, level, bucket and user, in key order, with the events deriving it', () => {
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
        assert.deepEqual(rollupUserRows(events), expected(events));
      },
    ),
    { numRuns: 300 },
  );
});

test('the minute, hour and day that start at the same instant are three rows', () => {
  const d = rollupUserRows([event({ ts: MIDNIGHT }), event({ ts: MIDNIGHT + 30_000, pageUrl: '/x' })]);
  assert.deepEqual(d.level, [MINUTE.level, HOUR.level, DAY.level]);
  assert.deepEqual(d.bucket, [MIDNIGHT, MIDNIGHT, MIDNIGHT]);
});
