import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ColumnarEngine, type ColumnarSelection } from '../../src/query/columnar/engine.ts';
import { Layers } from '../../src/query/columnar/layers.ts';
import { scanColumns } from '../../src/query/columnar/scan.ts';
import { spanGridOf } from '../../src/query/columnar/span-grid.ts';
import { visitDigestOf } from '../../src/query/columnar/visit-digest.ts';
import {
  BASE,
  HOUR,
  MINUTE,
  TIMEOUT,
  eventArbOf,
  eventsOf,
  modelOf,
  oneOf,
  VALUES,
} from './columnar-arbitraries.ts';
import { sessionize } from './web-fixtures.ts';
import type { Bots } from './web-reference.ts';

/**
 * The span grid (src/query/columnar/span-grid.ts) with a few units, so that cells are wide and
 * the range's edges cut them: the unfiltered summary through Layers, with users retired before and
 * after the grid's build, equals one engine over the rows left, median included.
 */

const N_USERS = 8;
const BOTS: Bots[] = ['exclude', 'include', 'only'];

/** A range bound: anywhere around the data, or a stored time ±1 ms. */
const boundArb = fc.oneof(
  fc.integer({ min: -HOUR, max: 7 * HOUR }).map((x) => ({ at: x, snap: null })),
  fc.tuple(fc.nat(), fc.integer({ min: -1, max: 1 })).map(([i, d]) => ({ at: d, snap: i })),
);

const runArb = fc.record({
  raws: fc.array(eventArbOf(VALUES, { users: N_USERS, hours: 6 }), { maxLength: 60, size: 'medium' }),
  dropEvery: fc.oneof(fc.constant(0), fc.integer({ min: 2, max: 4 })),
  units: fc.integer({ min: 1, max: 7 }),
  retiredBefore: fc.subarray(
    Array.from({ length: N_USERS }, (_, i) => `u${i}`),
    { maxLength: 2 },
  ),
  retiredAfter: fc.subarray([...Array.from({ length: N_USERS }, (_, i) => `u${i}`), 'bot0', 'bot1'], {
    maxLength: 3,
  }),
  questions: fc.array(fc.record({ from: boundArb, to: boundArb, bots: oneOf(BOTS) }), {
    minLength: 1,
    maxLength: 4,
  }),
});

test('the span grid answers the unfiltered summary as the engine does, at any cut of its cells', async () => {
  await fc.assert(
    fc.asyncProperty(runArb, async ({ raws, dropEvery, units, retiredBefore, retiredAfter, questions }) => {
      const events = eventsOf(raws);
      const visits = sessionize(events, TIMEOUT).filter((_, i) => dropEvery === 0 || i % dropEvery !== 0);
      const m = modelOf(events, visits);
      const layers = new Layers(m);
      const empty = modelOf([], []);
      if (retiredBefore.length > 0) layers.push(empty, retiredBefore);
      const c = scanColumns(m);
      const pageView = m.events.dims.event_type.dict.find('page_view');
      // Built now, with few units: Layers finds them and does not build its own.
      for (const b of [-1, 0, 1]) spanGridOf(m, c, visitDigestOf(m, c), b, pageView, units);
      if (retiredAfter.length > 0) layers.push(empty, retiredAfter);
      const gone = new Set([...retiredBefore, ...retiredAfter]);
      const one = new ColumnarEngine(
        modelOf(
          events.filter((e) => !gone.has(e.user_id)),
          visits.filter((v) => !gone.has(v.user_id)),
        ),
      );
      const times = events.map((e) => e.ts);
      const bound = (b: { at: number; snap: number | null }) =>
        b.snap === null || times.length === 0 ? BASE + b.at : times[b.snap % times.length] + b.at;
      for (const q of questions) {
        const sel: ColumnarSelection = { from: bound(q.from), to: bound(q.to), filters: [], bots: q.bots };
        const need = { events: true, visits: true, median: true };
        const got = layers.answer(sel, { kind: 'none' }, need);
        const want = await one.answer(sel, { kind: 'none' }, need);
        assert.deepEqual(got.total, want.total, 'total');
        assert.equal(got.medianMs, want.medianMs, 'median');
      }
    }),
    { numRuns: 400 },
  );
});

test('one unit: both users in one cell, a range holding it whole', () => {
  const events = eventsOf([
    { ...base(0), hour: 1 },
    { ...base(0), hour: 1, offset: MINUTE },
    { ...base(1), hour: 2 },
  ]);
  const m = modelOf(events, sessionize(events, TIMEOUT));
  const c = scanColumns(m);
  const g = spanGridOf(m, c, visitDigestOf(m, c), 0, m.events.dims.event_type.dict.find('page_view'), 1);
  assert.equal(g.units, 1);
  const layers = new Layers(m);
  const a = layers.answer(
    { from: BASE, to: BASE + 3 * HOUR, filters: [], bots: 'exclude' },
    { kind: 'none' },
    { events: true, visits: true, median: true },
  );
  assert.equal(a.total.visitors, 2);
  assert.equal(a.total.events, 3);
  assert.equal(a.total.visits, 2);
  assert.equal(a.medianMs, MINUTE / 2);
});

function base(user: number) {
  return {
    user,
    bot: false,
    hour: 0,
    offset: 0,
    type: 'page_view',
    path: '/',
    hostname: 'example.com',
    referrer_host: null,
    channel: 'Direct',
    utm_source: null,
    utm_campaign: null,
    browser: 'Chrome',
    os: 'Windows',
    device: 'desktop',
    country: 'US',
    plan: null,
    session: null,
  };
}
