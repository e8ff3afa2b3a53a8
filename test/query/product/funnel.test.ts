import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Layers } from '../../../src/query/columnar/layers.ts';
import type { ColumnarModel } from '../../../src/query/columnar/model.ts';
import { parseDimension } from '../../../src/query/filters.ts';
import { funnel, type FunnelAnswer, type FunnelQuestion } from '../../../src/query/product/funnel.ts';
import {
  BASE,
  DIMENSIONS,
  HOUR,
  MINUTE,
  TIMEOUT,
  VALUES,
  eventArbOf,
  eventsOf,
  filterArbOf,
  filterValuesOf,
  modelOf,
  oneOf,
  questionArbOf,
  toFilter,
  type RawEvent,
  type Values,
} from '../columnar-arbitraries.ts';
import { sessionize, webEventOf, type Visit, type WebEvent } from '../web-fixtures.ts';
import type { RefFilter } from '../web-reference.ts';
import { refFunnel, type RefFunnel, type RefFunnelQuestion } from './funnel-reference.ts';

/**
 * Funnels (src/query/product/funnel.ts) against the brute-force reference (funnel-reference.ts)
 * on random events: strict and any order, per user and per visit, every bot choice, global and
 * step filters, windows equal to the gaps between events (the inclusive edge), equal times,
 * repeated steps, duplicated events, breakdowns; then over Layers with pushed deltas.
 */

/** The property that tags each event with its id, so that a test can read the model's storage order. */
const ID_KEY = 'eid';

/** Values the base never has: a delta's dictionaries differ from the base's (as in columnar-layers.test.ts). */
const LATER: Values = {
  ...VALUES,
  type: [...VALUES.type, 'purchase'],
  path: [...VALUES.path, '/later'],
  channel: [...VALUES.channel, 'Paid Search'],
  country: [...VALUES.country, 'JP'],
  plan: [...VALUES.plan, 'team'],
};
const TIERS = ['gold', 'silver'];
const BREAKDOWNS = [...DIMENSIONS, 'property:tier'];

const stepFilterArbOf = (values: Values) =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: oneOf(values.type).map((t): RefFilter => ({ dim: 'event_type', op: '==', values: [t] })),
    },
    {
      weight: 3,
      arbitrary: oneOf(values.path.filter((p) => p !== null)).map((p): RefFilter => ({
        dim: 'page',
        op: '==',
        values: [p],
      })),
    },
    // Any dimension, visit ones and properties included.
    { weight: 1, arbitrary: filterArbOf(BREAKDOWNS, [...filterValuesOf(values), ...TIERS]) },
  );

/** 2..10 steps, mostly few; some copied onto others, so that one event may match a step twice over. */
const stepsArbOf = (values: Values) =>
  fc
    .tuple(
      fc
        .oneof(
          { weight: 4, arbitrary: fc.integer({ min: 2, max: 4 }) },
          { weight: 1, arbitrary: fc.integer({ min: 5, max: 10 }) },
        )
        .chain((n) =>
          fc.array(fc.array(stepFilterArbOf(values), { minLength: 0, maxLength: 2 }), {
            minLength: n,
            maxLength: n,
          }),
        ),
      fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 2 }),
    )
    .map(([steps, copies]) => {
      const out = [...steps];
      for (const [from, to] of copies) out[to % out.length] = out[from % out.length];
      return out;
    });

/** A window: an exact gap between two events (±1 ms, the inclusive edge), or any length. */
const windowArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ a: fc.nat(), b: fc.nat(), d: fc.integer({ min: -1, max: 1 }) }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 3 * HOUR }) },
  { weight: 1, arbitrary: fc.constant(10 * HOUR) },
);

const funnelArbOf = (values: Values) =>
  fc.record({
    q: questionArbOf(
      fc.oneof(
        { weight: 4, arbitrary: fc.constant<RefFilter[]>([]) },
        {
          weight: 1,
          arbitrary: fc.array(filterArbOf(BREAKDOWNS, filterValuesOf(values)), {
            minLength: 1,
            maxLength: 2,
          }),
        },
      ),
      BREAKDOWNS,
    ),
    steps: stepsArbOf(values),
    window: windowArb,
    unit: oneOf(['user', 'visit'] as const),
    order: oneOf(['strict', 'any'] as const),
    breakdown: fc.boolean(),
  });

type FunnelArb = ReturnType<typeof funnelArbOf> extends fc.Arbitrary<infer T> ? T : never;

/**
 * Raw events over few users and hours; often on a 10-minute grid (events sharing a time), and
 * sometimes twice (a late duplicate stored under another id).
 */
const rawsArbOf = (values: Values, users: number) =>
  fc
    .array(
      fc.record({
        raw: eventArbOf(values, { users, hours: 4 }),
        slot: fc.option(fc.nat(5), { freq: 2 }),
        twice: fc.nat(7).map((n) => n === 0),
        tier: fc.option(oneOf(TIERS), { freq: 3 }),
      }),
      { maxLength: 60, size: 'medium' },
    )
    .map((list) =>
      list.flatMap(({ raw, slot, twice, tier }) => {
        const r: RawEvent = slot === null ? raw : { ...raw, offset: slot * 10 * MINUTE };
        return (twice ? [r, r] : [r]).map((x) => ({ raw: x, tier }));
      }),
    );

/** The rows of `raws`, ids prefixed by `tag`, each event tagged with its id (ID_KEY) and tier. */
function rowsOf(raws: { raw: RawEvent; tier: string | null }[], tag: string): WebEvent[] {
  return eventsOf(raws.map((r) => r.raw)).map((e, i) => {
    const event_id = `${tag}${e.event_id}`;
    const tier = raws[i].tier;
    return {
      ...e,
      event_id,
      properties: { ...e.properties, ...(tier === null ? {} : { tier }), [ID_KEY]: event_id },
    };
  });
}

/** Each event id's index in its model: the sequence order's last tie-break. */
function storageRanks(models: readonly ColumnarModel[]): Map<string, number> {
  const ranks = new Map<string, number>();
  for (const m of models) {
    const ids = m.events.properties.get(ID_KEY)!;
    for (let i = 0; i < m.events.count; i++) ranks.set(ids.dict.value(ids.codes[i])!, i);
  }
  return ranks;
}

function questionsOf(a: FunnelArb, times: readonly number[]): { ref: RefFunnelQuestion; q: FunnelQuestion } {
  const snap = (at: [number, number] | null, t: number) =>
    at === null || times.length === 0 ? t : times[at[0] % times.length] + at[1];
  const from = snap(a.q.snapFrom, BASE + a.q.from);
  const to = snap(a.q.snapTo, from + a.q.span);
  const windowMs =
    typeof a.window === 'number'
      ? a.window
      : times.length === 0
        ? 0
        : Math.max(
            0,
            Math.abs(times[a.window.a % times.length] - times[a.window.b % times.length]) + a.window.d,
          );
  const breakdown = a.breakdown ? a.q.dimension : null;
  const ref: RefFunnelQuestion = {
    from,
    to,
    bots: a.q.bots,
    filters: a.q.filters,
    steps: a.steps,
    windowMs,
    unit: a.unit,
    order: a.order,
    breakdown,
  };
  const q: FunnelQuestion = {
    from,
    to,
    bots: a.q.bots,
    filters: a.q.filters.map(toFilter),
    steps: a.steps.map((s) => s.map(toFilter)),
    windowMs,
    unit: a.unit,
    order: a.order,
    ...(breakdown === null ? {} : { breakdown: parseDimension(breakdown)! }),
  };
  return { ref, q };
}

/**
 * The funnel of `q` equals the reference, in full and with `limit`s that cut the groups (ties at
 * the cut included): the first groups of the reference's order, and the count of them all.
 */
function assertSame(
  models: readonly ColumnarModel[],
  q: FunnelQuestion,
  want: RefFunnel,
  where: string,
): void {
  const all: FunnelAnswer = funnel(models, q);
  assert.deepEqual(all, { ...want, totalGroups: want.groups.length }, where);
  if (q.breakdown === undefined) return;
  for (const limit of [0, 1, 2, 3]) {
    assert.deepEqual(
      funnel(models, { ...q, limit }),
      { ...want, groups: want.groups.slice(0, limit), totalGroups: want.groups.length },
      `${where} limit ${limit}`,
    );
  }
}

const dropped = (visits: Visit[], every: number) => visits.filter((_, i) => every === 0 || i % every !== 0);
const dropEveryArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.integer({ min: 2, max: 4 }) },
);

test('funnels equal the reference: any order or strict, users or visits, filters, windows, ties, duplicates', () => {
  fc.assert(
    fc.property(
      rawsArbOf(VALUES, 3),
      dropEveryArb,
      fc.array(funnelArbOf(VALUES), { minLength: 1, maxLength: 4 }),
      (raws, dropEvery, questions) => {
        const events = rowsOf(raws, '');
        // Some visits missing from tally.sessions: their events have no visit (NULL visit dimensions).
        const visits = dropped(sessionize(events, TIMEOUT), dropEvery);
        const model = modelOf(events, visits);
        const ranks = storageRanks([model]);
        const times = events.map((e) => e.ts);
        for (const a of questions) {
          const { ref, q } = questionsOf(a, times);
          const want = refFunnel(events, visits, ref, (e) => ranks.get(e.event_id)!);
          assertSame([model], q, want, JSON.stringify(ref));
        }
      },
    ),
    { numRuns: 400 },
  );
});

const POOL = [...Array.from({ length: 6 }, (_, i) => `u${i}`), 'bot0', 'bot1'];

const pushArb = fc.record({
  raws: rawsArbOf(LATER, 5),
  // Users pushed with no rows at all: they vanish.
  emptied: fc.subarray(POOL, { maxLength: 2 }),
  dropEvery: dropEveryArb,
});

test('funnels over Layers with pushed deltas equal the reference over the final rows', () => {
  fc.assert(
    fc.property(
      rawsArbOf(VALUES, 3),
      fc.array(pushArb, { minLength: 1, maxLength: 3 }),
      fc.array(funnelArbOf(LATER), { minLength: 1, maxLength: 3 }),
      (baseRaws, pushes, questions) => {
        const rows = new Map<string, { events: WebEvent[]; visits: Visit[] }>();
        const keep = (events: WebEvent[], visits: Visit[]) => {
          const of = (u: string) => rows.get(u) ?? rows.set(u, { events: [], visits: [] }).get(u)!;
          for (const e of events) of(e.user_id).events.push(e);
          for (const v of visits) of(v.user_id).visits.push(v);
        };
        const baseEvents = rowsOf(baseRaws, 'b');
        const baseVisits = sessionize(baseEvents, TIMEOUT);
        keep(baseEvents, baseVisits);
        const layers = new Layers(modelOf(baseEvents, baseVisits));
        const times = baseEvents.map((e) => e.ts);
        for (const [s, push] of pushes.entries()) {
          const emptied = new Set(push.emptied);
          const events = rowsOf(push.raws, `d${s}`).filter((e) => !emptied.has(e.user_id));
          const visits = dropped(sessionize(events, TIMEOUT), push.dropEvery);
          const users = [...new Set([...events.map((e) => e.user_id), ...emptied])];
          layers.push(modelOf(events, visits), users);
          for (const u of users) rows.delete(u);
          keep(events, visits);
          times.push(...events.map((e) => e.ts));
        }
        const all = [...rows.values()];
        const events = all.flatMap((r) => r.events);
        const visits = all.flatMap((r) => r.visits);
        const ranks = storageRanks(layers.models);
        for (const a of questions) {
          const { ref, q } = questionsOf(a, times);
          const want = refFunnel(events, visits, ref, (e) => ranks.get(e.event_id)!);
          assertSame(layers.models, q, want, JSON.stringify(ref));
        }
      },
    ),
    { numRuns: 250 },
  );
});

function event(
  user_id: string,
  minute: number,
  type: string,
  country = 'US',
  session_id: string | null = null,
): WebEvent {
  return webEventOf({
    event_id: `${user_id}-${minute}-${type}`,
    user_id,
    type,
    ts: BASE + minute * MINUTE,
    session_id,
    country,
    browser: 'Chrome',
    os: 'iOS',
    device: 'mobile',
  });
}

const typeIs = (t: string) => [toFilter({ dim: 'event_type', op: '==', values: [t] })];

function question(
  steps: string[],
  windowMinutes: number,
  more: Partial<FunnelQuestion> = {},
): FunnelQuestion {
  return {
    from: BASE,
    to: BASE + 10 * HOUR,
    bots: 'exclude',
    filters: [],
    steps: steps.map(typeIs),
    windowMs: windowMinutes * MINUTE,
    unit: 'user',
    order: 'strict',
    ...more,
  };
}

/** Five users of known answers: view → click → signup within 10 minutes. */
const FIVE = [
  // u1 converts: 1 min, then 2 min.
  event('u1', 0, 'page_view'),
  event('u1', 1, 'click'),
  event('u1', 3, 'signup'),
  // u2 signs up before clicking: strict stops at the click (5 min); any order takes all three.
  event('u2', 0, 'page_view', 'DE'),
  event('u2', 2, 'signup', 'DE'),
  event('u2', 5, 'click', 'DE'),
  // u3 never views.
  event('u3', 0, 'click'),
  // u4 clicks 11 min after its view: outside the window.
  event('u4', 0, 'page_view', 'FR'),
  event('u4', 11, 'click', 'FR'),
  // u5's first view leads nowhere; its second leads to a click 5 min later, the signup too late.
  event('u5', 0, 'page_view'),
  event('u5', 20, 'page_view'),
  event('u5', 25, 'click'),
  event('u5', 40, 'signup'),
];

test('a 3-step strict funnel: counts per step, and the median time from the previous step', () => {
  const model = modelOf(FIVE, sessionize(FIVE, TIMEOUT));
  const q = question(['page_view', 'click', 'signup'], 10);
  const want = [
    { count: 4, medianMsFromPrevious: null },
    // u1 1 min, u2 5 min, u5 5 min.
    { count: 3, medianMsFromPrevious: 5 * MINUTE },
    { count: 1, medianMsFromPrevious: 2 * MINUTE },
  ];
  assert.deepEqual(funnel([model], q), { steps: want, groups: [], totalGroups: 0 });

  const byCountry = funnel([model], { ...q, breakdown: parseDimension('country')! });
  assert.deepEqual(
    byCountry.groups.map((g) => [g.key, g.steps.map((s) => s.count)]),
    [
      ['US', [2, 2, 1]],
      ['DE', [1, 1, 0]],
      ['FR', [1, 0, 0]],
    ],
  );
  assert.equal(byCountry.groups[0].steps[1].medianMsFromPrevious, 3 * MINUTE, 'US: the mean of 1 and 5 min');
});

test('any order: steps done in any order count, and the median is the mean of the two middle times', () => {
  const model = modelOf(FIVE, sessionize(FIVE, TIMEOUT));
  assert.deepEqual(funnel([model], question(['page_view', 'click', 'signup'], 10, { order: 'any' })).steps, [
    // u3's click is a step too.
    { count: 5, medianMsFromPrevious: null },
    // u1 1 min, u2 2 min (its signup), u5 5 min.
    { count: 3, medianMsFromPrevious: 2 * MINUTE },
    // u1 2 min, u2 3 min.
    { count: 2, medianMsFromPrevious: 2.5 * MINUTE },
  ]);
});

test('the window is inclusive: a step exactly windowMs after the first counts, 1 ms more does not', () => {
  const model = modelOf(FIVE, sessionize(FIVE, TIMEOUT));
  const at = (windowMs: number) =>
    funnel([model], { ...question(['page_view', 'click'], 0), windowMs }).steps.map((s) => s.count);
  // u4's click is 11 min after its view; u2's and u5's 5 min after theirs.
  assert.deepEqual(at(11 * MINUTE), [4, 4]);
  assert.deepEqual(at(11 * MINUTE - 1), [4, 3]);
  assert.deepEqual(at(5 * MINUTE), [4, 3]);
  assert.deepEqual(at(5 * MINUTE - 1), [4, 1]);
});

test('a repeated step: in strict order it takes a second event, in any order one event does both', () => {
  const one = [event('u1', 0, 'page_view')];
  const model = modelOf(one, sessionize(one, TIMEOUT));
  const steps = ['page_view', 'page_view'];
  assert.deepEqual(
    funnel([model], question(steps, 10)).steps.map((s) => s.count),
    [1, 0],
  );
  assert.deepEqual(funnel([model], question(steps, 10, { order: 'any' })).steps, [
    { count: 1, medianMsFromPrevious: null },
    { count: 1, medianMsFromPrevious: 0 },
  ]);
});

test('per visit: each visit is a unit of its own, and a chain does not cross visits', () => {
  const rows = [
    event('u1', 0, 'page_view', 'US', 's1'),
    event('u1', 1, 'click', 'US', 's2'),
    event('u1', 2, 'signup', 'US', 's2'),
    event('u1', 3, 'page_view', 'US', 's2'),
    event('u1', 4, 'click', 'US', 's2'),
  ];
  const model = modelOf(rows, sessionize(rows, TIMEOUT));
  const steps = ['page_view', 'click', 'signup'];
  assert.deepEqual(
    funnel([model], question(steps, 60)).steps.map((s) => s.count),
    [1, 1, 1],
  );
  // s1 views only; s2 views, then clicks: its signup came before the view.
  assert.deepEqual(
    funnel([model], question(steps, 60, { unit: 'visit' })).steps.map((s) => s.count),
    [2, 1, 0],
  );
});
