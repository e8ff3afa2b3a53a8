import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ColumnarEngine,
  type ColumnarAnswer,
  type ColumnarSelection,
} from '../../src/query/columnar/engine.ts';
import { Layers } from '../../src/query/columnar/layers.ts';
import type { ColumnarGrouping } from '../../src/query/columnar/scan.ts';
import { parseDimension } from '../../src/query/filters.ts';
import type { Counts } from '../../src/query/metrics.ts';
import {
  BASE,
  DIMENSIONS,
  HOUR,
  MINUTE,
  TIMEOUT,
  VALUES,
  eventArb,
  eventArbOf,
  eventsOf,
  filterArbOf,
  filterValuesOf,
  modelOf,
  oneOf,
  postedLayers,
  questionArbOf,
  toFilter,
  type Values,
} from './columnar-arbitraries.ts';
import { sessionize, webEventOf, type Visit, type WebEvent } from './web-fixtures.ts';
import type { Bots, RefFilter } from './web-reference.ts';

/**
 * Layers (src/query/columnar/layers.ts), a base model and deltas each holding the whole current
 * rows of some users, against one ColumnarEngine over the final rows (each user's rows from the
 * last layer that holds it): the same groups by key, totals and median, for any pushes.
 */

/** Values the base never has: the deltas bring new codes, in dictionaries of their own. */
const LATER: Values = {
  type: [...VALUES.type, 'purchase'],
  path: [...VALUES.path, '/later', '/Blog/B'],
  hostname: [...VALUES.hostname, 'new.example.net'],
  referrer_host: [...VALUES.referrer_host, 'bing.com'],
  channel: [...VALUES.channel, 'Paid Search'],
  utm_source: [...VALUES.utm_source, 'mastodon'],
  utm_campaign: [...VALUES.utm_campaign, 'autumn'],
  browser: [...VALUES.browser, 'Safari'],
  os: [...VALUES.os, 'Linux'],
  device: [...VALUES.device, 'tv'],
  country: [...VALUES.country, 'JP'],
  plan: [...VALUES.plan, 'team'],
  session: [...VALUES.session, 's3'],
};
/** A property key only deltas have. */
const TIERS = ['gold', 'silver', '2'];
const LATER_DIMENSIONS = [...DIMENSIONS, 'property:tier'];
const laterFilterArb = filterArbOf(LATER_DIMENSIONS, [...filterValuesOf(LATER), ...TIERS]);

/** Every user a step may push: u6… and bot… never in the base's events. */
const POOL = [...Array.from({ length: 10 }, (_, i) => `u${i}`), 'bot0', 'bot1'];

const dropEveryArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.integer({ min: 2, max: 5 }) },
);

const stepArb = fc.record({
  raws: fc.array(fc.tuple(eventArbOf(LATER, { users: 9, hours: 7 }), fc.option(oneOf(TIERS), { freq: 2 })), {
    maxLength: 30,
    size: 'medium',
  }),
  // Users pushed with no rows at all: they must vanish.
  emptied: fc.subarray(POOL, { maxLength: 3 }),
  // Some visits missing from tally.sessions, as in columnar.test.ts.
  dropEvery: dropEveryArb,
});

const groupingArb: fc.Arbitrary<ColumnarGrouping> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
  {
    weight: 4,
    arbitrary: oneOf(LATER_DIMENSIONS).map((d) => ({
      kind: 'dimension' as const,
      dimension: parseDimension(d)!,
    })),
  },
  {
    weight: 1,
    // Ragged bucket starts, ascending.
    arbitrary: fc
      .uniqueArray(fc.integer({ min: -HOUR, max: 9 * HOUR }), { maxLength: 6 })
      .map((xs) => ({ kind: 'buckets' as const, starts: xs.sort((a, b) => a - b).map((x) => BASE + x) })),
  },
);

const anyQuestionArb = fc.record({
  q: questionArbOf(
    // Often none: random filters mostly select nothing, and groups should be many and full.
    fc.oneof(
      { weight: 2, arbitrary: fc.constant<RefFilter[]>([]) },
      { weight: 3, arbitrary: fc.array(laterFilterArb, { minLength: 1, maxLength: 2 }) },
    ),
    LATER_DIMENSIONS,
  ),
  grouping: groupingArb,
  need: fc.oneof(
    { weight: 2, arbitrary: fc.constant({ events: true, visits: true, median: true }) },
    { weight: 3, arbitrary: fc.record({ events: fc.boolean(), visits: fc.boolean(), median: fc.boolean() }) },
  ),
});

/**
 * The unfiltered summary over a wide range: most users wholly inside it, so the base's visit
 * digest answers them and its median comes from parts (visit-digest.ts); a few at the edges.
 */
const wideSummaryArb = fc.record({
  q: fc.record({
    from: fc.integer({ min: -HOUR, max: HOUR }),
    span: fc.integer({ min: 5 * HOUR, max: 10 * HOUR }),
    snapFrom: fc.option(fc.tuple(fc.nat(), fc.integer({ min: -1, max: 1 })), { freq: 4 }),
    snapTo: fc.constant(null),
    filters: fc.constant<RefFilter[]>([]),
    bots: oneOf<Bots>(['exclude', 'exclude', 'include', 'only']),
    dimension: oneOf(LATER_DIMENSIONS),
  }),
  grouping: fc.constant<ColumnarGrouping>({ kind: 'none' }),
  need: fc.constant({ events: true, visits: true, median: true }),
});

/**
 * An unfiltered breakdown over a wide range with visit metrics: visits count under their events'
 * keys, which the base's digests with visit sums answer for the users wholly inside (digest.ts).
 */
const wideBreakdownArb = fc.record({
  q: wideSummaryArb.map((w) => w.q),
  grouping: oneOf(LATER_DIMENSIONS).map((d) => ({
    kind: 'dimension' as const,
    dimension: parseDimension(d)!,
  })),
  need: fc.record({ events: fc.boolean(), visits: fc.constant(true), median: fc.constant(false) }),
});

const questionArb = fc.oneof(
  { weight: 3, arbitrary: anyQuestionArb },
  { weight: 1, arbitrary: wideSummaryArb },
  { weight: 1, arbitrary: wideBreakdownArb },
);

const runArb = fc.record({
  base: fc.array(eventArb, { maxLength: 50, size: 'medium' }),
  posted: fc.boolean(),
  // Users u20… no step pushes: they stay in the base, as most users do (the visit digest's case).
  // Visits of a few events, minutes apart and without session ids: durations seldom 0, so the
  // median depends on which visits count.
  bystanders: fc
    .array(
      fc.tuple(eventArbOf(VALUES, { users: 15, hours: 5 }), fc.array(fc.nat(20 * MINUTE), { maxLength: 3 })),
      { maxLength: 40, size: 'medium' },
    )
    .map((visits) =>
      visits.flatMap(([first, gaps]) => {
        let offset = first.offset;
        const raws = [first, ...gaps.map((gap) => ({ ...first, offset: (offset += gap) }))];
        return raws.map((r) => ({ ...r, user: r.user + 20, session: null }));
      }),
    ),
  dropEvery: dropEveryArb,
  // Visits flagged a bot's though their events here are human: a visit begun before the raw
  // window by a bot's user agent (tally.sessions keeps it; the model has its later events only).
  botVisitEvery: dropEveryArb,
  steps: fc.array(stepArb, { minLength: 1, maxLength: 4 }),
  questions: fc.array(questionArb, { minLength: 1, maxLength: 3 }),
});

const dropped = (visits: Visit[], every: number) => visits.filter((_, i) => every === 0 || i % every !== 0);

/** Each user's current rows. */
type Rows = Map<string, { events: WebEvent[]; visits: Visit[] }>;

function keep(rows: Rows, events: readonly WebEvent[], visits: readonly Visit[]): void {
  const of = (user: string) => {
    let r = rows.get(user);
    if (r === undefined) rows.set(user, (r = { events: [], visits: [] }));
    return r;
  };
  for (const e of events) of(e.user_id).events.push(e);
  for (const v of visits) of(v.user_id).visits.push(v);
}

function byKey(a: ColumnarAnswer): Map<unknown, Counts> {
  return new Map(a.groups.map((g) => [g.key, g.counts]));
}

function assertSameAnswer(got: ColumnarAnswer, want: ColumnarAnswer, where: string): void {
  assert.equal(byKey(got).size, got.groups.length, `${where}: each key once`);
  assert.deepEqual(byKey(got), byKey(want), `${where}: groups`);
  assert.deepEqual(got.total, want.total, `${where}: total`);
  assert.equal(got.medianMs, want.medianMs, `${where}: median`);
}

test('layers answer as one model of the final rows, for any pushes of whole users', async () => {
  await fc.assert(
    fc.asyncProperty(
      runArb,
      async ({ base, posted, bystanders, dropEvery, botVisitEvery, steps, questions }) => {
        const rows: Rows = new Map();
        const baseEvents = eventsOf([...base, ...bystanders]);
        const baseVisits = dropped(sessionize(baseEvents, TIMEOUT), dropEvery).map((v, i) =>
          botVisitEvery > 0 && i % botVisitEvery === 1 ? { ...v, is_bot: true } : v,
        );
        keep(rows, baseEvents, baseVisits);
        // Half the time the base crosses threads as a load's does, its summary digests built before.
        const baseModel = modelOf(baseEvents, baseVisits);
        const layers = posted ? await postedLayers(baseModel) : new Layers(baseModel);
        // Every time ever stored, hidden ones included, for the ranges to snap to.
        const times = baseEvents.map((e) => e.ts);

        for (const [s, step] of steps.entries()) {
          const emptied = new Set(step.emptied);
          const events = eventsOf(step.raws.map(([r]) => r))
            .map((e, i) => {
              const tier = step.raws[i][1];
              return tier === null ? e : { ...e, properties: { ...e.properties, tier } };
            })
            .filter((e) => !emptied.has(e.user_id));
          const visits = dropped(sessionize(events, TIMEOUT), step.dropEvery);
          const users = [...new Set([...events.map((e) => e.user_id), ...emptied])];
          layers.push(modelOf(events, visits), users);
          for (const u of users) rows.delete(u);
          keep(rows, events, visits);
          times.push(...events.map((e) => e.ts));

          const all = [...rows.values()];
          const one = new ColumnarEngine(
            modelOf(
              all.flatMap((r) => r.events),
              all.flatMap((r) => r.visits),
            ),
          );
          for (const { q, grouping, need } of questions) {
            const snap = (at: [number, number] | null, t: number) =>
              at === null || times.length === 0 ? t : times[at[0] % times.length] + at[1];
            const from = snap(q.snapFrom, BASE + q.from);
            const sel: ColumnarSelection = {
              from,
              to: snap(q.snapTo, from + q.span),
              filters: q.filters.map(toFilter),
              bots: q.bots,
            };
            assertSameAnswer(
              layers.answer(sel, grouping, need),
              await one.answer(sel, grouping, need),
              `step ${s}, ${grouping.kind}`,
            );
          }
        }
      },
    ),
    { numRuns: 500 },
  );
});

function pageView(user_id: string, ts: number, path: string): WebEvent {
  return webEventOf({
    event_id: `${user_id}-${ts}`,
    user_id,
    ts,
    path,
    browser: 'Chrome',
    os: 'iOS',
    device: 'mobile',
  });
}

function modelOfEvents(events: WebEvent[]) {
  return modelOf(events, sessionize(events, TIMEOUT));
}

/** Counts of `visitors` users' single-page-view visits (one event each, bounces, 0 ms). */
function bounces(visitors: number, views: number): Counts {
  return {
    visitors,
    events: views,
    page_views: views,
    visits: views,
    bounces: views,
    duration_ms: 0,
    visit_page_views: views,
  };
}

test('a user moved to a delta counts once, under its new rows; one pushed with no rows vanishes', () => {
  const layers = new Layers(
    modelOfEvents([
      pageView('u1', BASE, '/a'),
      pageView('u1', BASE + MINUTE, '/a'),
      pageView('u2', BASE + 2 * MINUTE, '/a'),
    ]),
  );
  const sel: ColumnarSelection = { from: BASE, to: BASE + 2 * HOUR, filters: [], bots: 'exclude' };
  const byPage: ColumnarGrouping = { kind: 'dimension', dimension: parseDimension('page')! };
  const need = { events: true, visits: true, median: true };

  const before = layers.answer(sel, byPage, need);
  // u1's visit of two views over a minute, and u2's bounce.
  const baseA: Counts = {
    visitors: 2,
    events: 3,
    page_views: 3,
    visits: 2,
    bounces: 1,
    duration_ms: MINUTE,
    visit_page_views: 3,
  };
  assert.deepEqual(byKey(before), new Map([['/a', baseA]]));
  assert.equal(before.medianMs, MINUTE / 2);

  layers.push(modelOfEvents([pageView('u1', BASE + HOUR, '/b')]), ['u1']);
  const moved = layers.answer(sel, byPage, need);
  assert.deepEqual(
    byKey(moved),
    new Map([
      ['/a', bounces(1, 1)],
      ['/b', bounces(1, 1)],
    ]),
  );
  assert.deepEqual(moved.total, bounces(2, 2));
  assert.equal(moved.medianMs, 0);
  assert.deepEqual(layers.answer(sel, { kind: 'buckets', starts: [BASE, BASE + HOUR] }, need).groups, [
    { key: 0, counts: bounces(1, 1) },
    { key: 1, counts: bounces(1, 1) },
  ]);

  layers.push(modelOf([], []), ['u2']);
  const gone = layers.answer(sel, byPage, need);
  assert.deepEqual(byKey(gone), new Map([['/b', bounces(1, 1)]]));
  assert.deepEqual(gone.total, bounces(1, 1));
  assert.equal(layers.count, 3);
});
