import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ColumnarModel } from '../../../src/query/columnar/model.ts';
import { forEachSequence, type SequenceUnit } from '../../../src/query/product/sequences.ts';
import { MINUTE, TIMEOUT, VALUES, eventArbOf, eventsOf, modelOf } from '../columnar-arbitraries.ts';
import { sessionize } from '../web-fixtures.ts';

/**
 * forEachSequence's order (src/query/product/sequences.ts) against a plain sort: each user's (or
 * visit's) selected events by (time, tie, index). Times are coarse so that ties are common, and
 * some events fall out of their visits so that events of no visit, stored last, break the order.
 */

type Tie = (model: ColumnarModel) => (event: number) => number;

const TIES: Record<string, Tie | undefined> = {
  none: undefined,
  // Few distinct keys: ties of time and key, decided by the index.
  typeParity: (m) => (i) => m.events.dims.event_type.codes[i] % 2,
  descending: () => (i) => -i,
};

/** The sequences as the contract defines them, by unit key (user, visit). */
function reference(
  model: ColumnarModel,
  from: number,
  to: number,
  unit: SequenceUnit,
  tie: Tie | undefined,
): Map<string, number[]> {
  const { ts, isBot, visit } = model.events;
  const key = tie?.(model) ?? (() => 0);
  const out = new Map<string, number[]>();
  for (let u = 0; u + 1 < model.userEvents.length; u++) {
    for (let i = model.userEvents[u]; i < model.userEvents[u + 1]; i++) {
      if (!(ts[i] >= from && ts[i] < to) || isBot[i] !== 0) continue;
      if (unit === 'visit' && visit[i] < 0) continue;
      const k = `${u}:${unit === 'visit' ? visit[i] : -1}`;
      out.set(k, [...(out.get(k) ?? []), i]);
    }
  }
  for (const events of out.values()) events.sort((a, b) => ts[a] - ts[b] || key(a) - key(b) || a - b);
  return out;
}

test('sequences come by (time, tie, index), whatever the storage order', () => {
  fc.assert(
    fc.property(
      fc.array(eventArbOf(VALUES, { users: 4, hours: 4 }), { maxLength: 60 }),
      fc.integer({ min: 0, max: 3 }),
      fc.constantFrom(...Object.keys(TIES)),
      fc.constantFrom<SequenceUnit>('user', 'visit'),
      fc.integer({ min: 0, max: 5 }),
      (raws, dropEvery, tieName, unit, span) => {
        // Visits of the exact times, events on a 10-minute grid: many ties, and events pushed
        // out of their visit's span (no visit: stored after the user's visits) tie with others.
        const exact = eventsOf(raws);
        const visits = sessionize(exact, TIMEOUT).filter((_, i) => dropEvery < 2 || i % dropEvery !== 0);
        const events = exact.map((e) => ({ ...e, ts: e.ts - (e.ts % (10 * MINUTE)) }));
        const model = modelOf(events, visits);
        const from = (events.length === 0 ? 0 : Math.min(...events.map((e) => e.ts))) + span * 30 * MINUTE;
        const to = Infinity;
        const tie = TIES[tieName];
        const got = new Map<string, number[]>();
        forEachSequence(
          [model],
          { from, to, bots: 'exclude', filters: [] },
          unit,
          (seq) => got.set(`${seq.user}:${seq.visit}`, Array.from(seq.events.subarray(0, seq.n))),
          tie === undefined ? {} : { tie },
        );
        assert.deepEqual(got, reference(model, from, to, unit, tie));
      },
    ),
    { numRuns: 500 },
  );
});
