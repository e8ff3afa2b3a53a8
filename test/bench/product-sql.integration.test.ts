import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { productMismatch } from '../../bench/lib/product-check.ts';
import { productQuestions, type ProductQuestion } from '../../bench/lib/product-questions.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { writeBatch } from '../helpers/sessions-setup.ts';
import { DIMENSIONS, sessionize, type SessionizerEvent } from '../helpers/sessionizer.ts';
import { refFunnel, refPaths, refRetention } from './product-reference.ts';

/**
 * Bench scenario 10's baselines (bench/lib/product-questions.ts) and its cross-check
 * (bench/lib/product-check.ts) against the contract's answers computed from scratch
 * (./product-reference.ts): when the bench says Tally is wrong, the SQL must not be.
 * Small worlds with ties, window edges, bots, events before the range and cut weeks.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const TIMEOUT = 30 * MINUTE;
/** A Wednesday 00:00 UTC: the range below cuts its week and the last one. */
const T0 = Date.UTC(2026, 10, 4);
const SPAN_HOURS = 20 * 24;
const RANGE = { from: T0 + 2 * DAY + 7 * MINUTE, to: T0 + 17 * DAY + 5 * HOUR };
const WINDOW_MS = DAY;

const NO_DIMENSIONS = Object.fromEntries(DIMENSIONS.map((d) => [d, null]));

const KINDS = ['home', 'home', 'pricing', 'pricing', 'signup', 'click', 'other', 'none'] as const;
type Generated = { user: number; hour: number; slot: number; kind: (typeof KINDS)[number]; bot: boolean };

/** An event: an hour and a 10-minute slot in it (busy hours chain into visits; window edges a day apart). */
const eventArb: fc.Arbitrary<Generated> = fc.record({
  user: fc.integer({ min: 0, max: 4 }),
  hour: fc.oneof(
    fc.integer({ min: 0, max: SPAN_HOURS - 1 }),
    // Busy hours in the range (long visits), and hours a window apart at the range's start.
    { arbitrary: fc.integer({ min: 200, max: 203 }), weight: 3 },
    fc.constantFrom(48, 72, 96, 120),
  ),
  slot: fc.integer({ min: 0, max: 5 }),
  kind: fc.constantFrom(...KINDS),
  bot: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
});

function toEvent(g: Generated, i: number): SessionizerEvent {
  const page = { home: '/', pricing: '/pricing', signup: '/signup', click: '/', other: '/docs', none: null };
  const type = g.kind === 'signup' ? 'signup' : g.kind === 'click' ? 'click' : 'page_view';
  return {
    ...NO_DIMENSIONS,
    project: 'default',
    userId: `u${g.user}`,
    eventId: `e${i}`,
    ts: T0 + g.hour * HOUR + g.slot * 10 * MINUTE,
    type,
    sessionId: null,
    path: page[g.kind],
    isBot: g.bot,
  } as SessionizerEvent;
}

const byKind = (kind: string) => productQuestions(30).find((q) => q.kind === kind)!;

test('scenario 10 baselines: the SQL answers what the contract answers', async (t) => {
  const db = await startTestPostgres(t);
  await new RawPartitions(db.pool, undefined).ensure(Array.from({ length: 22 }, (_, d) => T0 + d * DAY));
  const funnel: ProductQuestion = { ...byKind('funnel'), sqlParams: ['/', '/pricing', 'signup', WINDOW_MS] };
  const retention = byKind('retention');
  const pathsQ = byKind('paths');
  const paths: ProductQuestion = { ...pathsQ, params: { ...pathsQ.params, limit: 2 }, sqlParams: ['/', 2] };
  const run = async (q: ProductQuestion): Promise<unknown[]> => {
    const params = [new Date(RANGE.from), new Date(RANGE.to), ...q.sqlParams];
    return (await db.pool.query<Record<string, unknown>>(q.sql, params)).rows;
  };
  const seen = { step3: 0, cutCohorts: 0, deepPaths: 0, cutLists: 0 };

  await fc.assert(
    fc.asyncProperty(fc.array(eventArb, { minLength: 1, maxLength: 60, size: 'max' }), async (generated) => {
      const events = generated.map(toEvent);
      await db.pool.query(
        'DELETE FROM tally.events; DELETE FROM tally.event_ids; DELETE FROM tally.sessions',
      );
      const client = await db.pool.connect();
      try {
        await writeBatch(client, events, TIMEOUT);
      } finally {
        client.release();
      }
      const steps = [
        (e: SessionizerEvent) => e.type === 'page_view' && e.path === '/',
        (e: SessionizerEvent) => e.type === 'page_view' && e.path === '/pricing',
        (e: SessionizerEvent) => e.type === 'signup',
      ];
      const f = refFunnel(events, RANGE, steps, WINDOW_MS);
      assert.equal(productMismatch(funnel, f, await run(funnel), RANGE), undefined);
      const r = refRetention(events, RANGE, 8);
      assert.equal(productMismatch(retention, r, await run(retention), RANGE), undefined);
      const visits = sessionize(events, TIMEOUT);
      const p = refPaths(events, visits, RANGE, { anchor: '/', depth: 3, limit: 2 });
      assert.equal(productMismatch(paths, p, await run(paths), RANGE), undefined);
      if (f.steps[2].count > 0) seen.step3++;
      if (r.cohorts.some((c) => c.users > 0 && c.returned.includes(null))) seen.cutCohorts++;
      const every = refPaths(events, visits, RANGE, { anchor: '/', depth: 3, limit: 100 });
      if (every.levels[2].items.some((i) => i.path[2] !== null)) seen.deepPaths++;
      if (p.levels.some((l) => l.other > 0)) seen.cutLists++;
    }),
    { numRuns: 200 },
  );
  // The worlds reach what the checks are about, or the property proves little.
  assert.ok(seen.step3 > 10, `funnels reaching step 3: ${seen.step3}`);
  assert.ok(seen.cutCohorts > 10, `cohorts cut by the range's end: ${seen.cutCohorts}`);
  assert.ok(seen.deepPaths > 10, `paths three pages deep: ${seen.deepPaths}`);
  assert.ok(seen.cutLists > 10, `levels with more paths than listed: ${seen.cutLists}`);
});

test('scenario 10 cross-check: a wrong answer is named', () => {
  const funnel = byKind('funnel');
  const wrong = productMismatch(
    funnel,
    { steps: [{ count: 3 }, { count: 2 }, { count: 1 }] },
    [{ step1: 3, step2: 2, step3: 0 }],
    RANGE,
  );
  assert.match(wrong ?? '', /funnel step counts: Tally \[3,2,1\], raw events \[3,2,0\]/);
});
