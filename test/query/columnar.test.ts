import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ColumnarEngine, type ColumnarSelection } from '../../src/query/columnar/engine.ts';
import { median, medianOfParts } from '../../src/query/columnar/median.ts';
import { ScanPool } from '../../src/query/columnar/scan-pool.ts';
import { parseDimension } from '../../src/query/filters.ts';
import { metricValue, type BreakdownMetric, type Counts } from '../../src/query/metrics.ts';
import {
  BASE,
  HOUR,
  TIMEOUT,
  eventArb,
  eventsOf,
  modelOf,
  questionArb,
  toFilter,
} from './columnar-arbitraries.ts';
import { sessionize, type Visit } from './web-fixtures.ts';
import { Reference, refMedianSeconds, refMetric, type Question, type RefCounts } from './web-reference.ts';

/**
 * The columnar engine (src/query/columnar) against the from-scratch reference (web-reference.ts)
 * on random events, visits, filters, bots and ragged ranges, in process: every group's integer
 * sums and every metric, the totals, the median, unique users per bucket.
 */

function refCounts(c: RefCounts): Counts {
  const sum = (f: (v: Visit) => number) => c.visits.reduce((s, v) => s + f(v), 0);
  return {
    visitors: c.visitors.size,
    events: c.events,
    page_views: c.page_views,
    visits: c.visits.length,
    bounces: sum((v) => (v.events === 1 && v.page_views === 1 ? 1 : 0)),
    duration_ms: sum((v) => v.ended_at - v.started_at),
    visit_page_views: sum((v) => v.page_views),
  };
}

const METRICS: BreakdownMetric[] = [
  'visitors',
  'visits',
  'page_views',
  'events',
  'bounce_rate',
  'visit_duration',
  'views_per_visit',
];

function assertSame(got: Counts, want: RefCounts, where: string): void {
  assert.deepEqual(got, refCounts(want), where);
  for (const m of METRICS) assert.equal(metricValue(m, got), refMetric(m, want), `${where}: ${m}`);
}

const runArb = fc.record({
  raws: fc.array(eventArb, { minLength: 1, maxLength: 70 }),
  // Some visits missing from tally.sessions: their events then have no visit (NULL visit dimensions).
  dropEvery: fc.oneof(
    { weight: 3, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 2, max: 5 }) },
  ),
  questions: fc.array(questionArb, { minLength: 1, maxLength: 4 }),
});

test('columnar breakdowns, summary and unique users equal the reference under random filters and ranges', async () => {
  await fc.assert(
    fc.asyncProperty(runArb, async ({ raws, dropEvery, questions }) => {
      const events = eventsOf(raws);
      const visits = sessionize(events, TIMEOUT).filter((_, i) => dropEvery === 0 || i % dropEvery !== 0);
      const ref = new Reference(events, visits);
      const engine = new ColumnarEngine(modelOf(events, visits));
      for (const qa of questions) {
        const snap = (at: [number, number] | null, t: number) =>
          at === null ? t : events[at[0] % events.length].ts + at[1];
        const from = snap(qa.snapFrom, BASE + qa.from);
        const to = snap(qa.snapTo, from + qa.span);
        const q: Question = { from, to, filters: qa.filters, bots: qa.bots };
        const sel: ColumnarSelection = { ...q, filters: q.filters.map(toFilter) };

        const groups = await engine.breakdown(sel, parseDimension(qa.dimension)!, {
          events: true,
          visits: true,
        });
        const want = ref.groups(q, qa.dimension);
        assert.deepEqual(
          new Set(groups.groups.map((g) => g.key)),
          new Set(want.keys()),
          `${qa.dimension}: the same keys`,
        );
        for (const g of groups.groups)
          assertSame(g.counts, want.get(g.key as string | null)!, `${qa.dimension}=${g.key}`);

        const totals = ref.totals(q);
        assertSame(groups.total, totals, 'breakdown total');
        const summary = await engine.summary(sel);
        assertSame(summary.counts, totals, 'summary');
        assert.equal(
          summary.medianMs === null ? null : Math.round(summary.medianMs / 1000),
          refMedianSeconds(totals.visits),
          'median',
        );

        const starts = Array.from({ length: 9 }, (_, i) => BASE - HOUR + i * HOUR);
        const selected = ref.selectedEvents(q);
        const users = starts.map(
          (s, i) =>
            new Set(
              selected
                .filter((e) => e.ts >= s && (i + 1 === starts.length || e.ts < starts[i + 1]))
                .map((e) => e.user_id),
            ).size,
        );
        assert.deepEqual(await engine.uniqueUsers(sel, starts), users, 'unique users per bucket');
      }
    }),
    { numRuns: 400 },
  );
});

test('scans split across worker threads add up to the one-thread answer', async () => {
  await fc.assert(
    fc.asyncProperty(runArb, fc.integer({ min: 2, max: 4 }), async ({ raws, questions }, slices) => {
      const events = eventsOf(raws);
      const model = modelOf(events, sessionize(events, TIMEOUT));
      const one = new ColumnarEngine(model);
      const pool = new ScanPool(model, slices);
      try {
        const split = new ColumnarEngine(model, { pool });
        for (const qa of questions) {
          const sel: ColumnarSelection = {
            from: BASE + qa.from,
            to: BASE + qa.from + qa.span,
            filters: qa.filters.map(toFilter),
            bots: qa.bots,
          };
          const dimension = parseDimension(qa.dimension)!;
          const need = { events: true, visits: true };
          assert.deepEqual(
            await split.breakdown(sel, dimension, need),
            await one.breakdown(sel, dimension, need),
          );
          assert.deepEqual(await split.summary(sel), await one.summary(sel));
        }
      } finally {
        await pool.stop();
      }
    }),
    { numRuns: 25 },
  );
});

const sortedMedian = (xs: readonly number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return xs.length === 0 ? null : xs.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

test('the median is percentile_cont(0.5) of any list', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: -5, max: 50 }), { maxLength: 40 }), (xs) => {
      assert.equal(median(Float64Array.from(xs), xs.length), sortedMedian(xs));
    }),
  );
});

test('the median of thousands of durations (the radix path) is percentile_cont(0.5)', () => {
  const duration = fc.oneof(
    fc.constant(0),
    fc.integer({ min: 0, max: 100 }),
    fc.integer({ min: 0, max: 10_000_000 }),
    fc.double({ min: 0, max: 1e12, noNaN: true, noDefaultInfinity: true }),
  );
  fc.assert(
    fc.property(fc.array(duration, { minLength: 4096, maxLength: 9000 }), fc.boolean(), (xs, negative) => {
      if (negative) xs[xs.length >> 1] = -1; // the fallback
      assert.equal(median(Float64Array.from(xs), xs.length), sortedMedian(xs));
    }),
    { numRuns: 40 },
  );
});

test('the median of parts, (all − removed) ∪ extra, is the median of that multiset', () => {
  // Few distinct values: ties across the three parts, where a rank search most easily slips.
  const value = fc.oneof(fc.integer({ min: 0, max: 6 }), fc.double({ min: 0, max: 1e6, noNaN: true }));
  const sorted = (xs: readonly number[]) => Float64Array.from(xs).sort();
  fc.assert(
    fc.property(
      fc.array(fc.tuple(value, fc.boolean()), { maxLength: 60 }),
      fc.array(value, { maxLength: 20 }),
      (all, extra) => {
        const kept = [...all.filter(([, removed]) => !removed).map(([x]) => x), ...extra];
        const removed = all.filter(([, r]) => r).map(([x]) => x);
        assert.equal(
          medianOfParts(sorted(all.map(([x]) => x)), sorted(removed), sorted(extra)),
          sortedMedian(kept),
        );
      },
    ),
    { numRuns: 2000 },
  );
});
