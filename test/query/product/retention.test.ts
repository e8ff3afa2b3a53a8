import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Layers } from '../../../src/query/columnar/layers.ts';
import type { ColumnarModel } from '../../../src/query/columnar/model.ts';
import { parseFilters } from '../../../src/query/filters.ts';
import {
  retention,
  type RetentionAnswer,
  type RetentionPeriod,
} from '../../../src/query/product/retention.ts';
import {
  TIMEOUT,
  VALUES,
  eventArbOf,
  eventsOf,
  filterArb,
  modelOf,
  oneOf,
  toFilter,
  type RawEvent,
} from '../columnar-arbitraries.ts';
import { sessionize, type Visit, type WebEvent } from '../web-fixtures.ts';
import type { Bots, RefFilter } from '../web-reference.ts';
import { refRetention, type RefRetentionQuestion } from './retention-reference.ts';

/**
 * Retention (src/query/product/retention.ts) on readable examples, then against the reference
 * written from the contract (retention-reference.ts) on random events spread over weeks or
 * months, in zones with DST changes and odd offsets, one model or layers with pushed deltas.
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const at = (iso: string) => Date.parse(iso);

function ev(user: string, time: string, type = 'page_view', more: Partial<WebEvent> = {}): WebEvent {
  return {
    event_id: `${user}-${time}-${type}`,
    user_id: user,
    type,
    ts: at(time),
    session_id: null,
    properties: null,
    path: '/',
    hostname: 'example.com',
    referrer_host: null,
    channel: 'Direct',
    utm_source: null,
    utm_medium: null,
    utm_campaign: null,
    utm_term: null,
    utm_content: null,
    browser: 'Firefox',
    os: 'Linux',
    device: 'desktop',
    country: 'US',
    is_bot: false,
    ...more,
  };
}

const modelOfRows = (events: WebEvent[]) => modelOf(events, sessionize(events, TIMEOUT));

interface Ask {
  from: string;
  to: string;
  period: RetentionPeriod;
  periods: number;
  tz: string;
  bots?: Bots;
  filters?: string[];
  cohort?: string[];
  back?: string[];
}

function ask(models: readonly ColumnarModel[], a: Ask): RetentionAnswer {
  return retention(models, {
    from: at(a.from),
    to: at(a.to),
    bots: a.bots ?? 'exclude',
    filters: parseFilters(a.filters ?? []),
    period: a.period,
    periods: a.periods,
    tz: a.tz,
    cohortFilters: parseFilters(a.cohort ?? []),
    returnFilters: parseFilters(a.back ?? []),
  });
}

const row = (start: string, users: number, returned: (number | null)[]) => ({
  start: at(start),
  users,
  returned,
});

test('days in UTC: first seen, any return, unobservable periods null, earlier users in no cohort', () => {
  const model = modelOfRows([
    ev('u1', '2026-01-05T10:00:00Z'),
    ev('u1', '2026-01-06T09:00:00Z'),
    // After q.to: not seen.
    ev('u1', '2026-01-08T23:00:00Z'),
    ev('u2', '2026-01-06T12:00:00Z'),
    ev('u2', '2026-01-06T13:00:00Z'),
    // First seen before q.from: in no cohort, though active inside the range.
    ev('u3', '2026-01-01T08:00:00Z'),
    ev('u3', '2026-01-05T11:00:00Z'),
  ]);
  const got = ask([model], {
    from: '2026-01-05T00:00:00Z',
    to: '2026-01-08T12:00:00Z',
    period: 'day',
    periods: 4,
    tz: 'UTC',
  });
  assert.deepEqual(got.cohorts, [
    row('2026-01-05T00:00:00Z', 1, [1, 1, 0, 0]),
    row('2026-01-06T00:00:00Z', 1, [1, 0, 0, null]),
    row('2026-01-07T00:00:00Z', 0, [0, 0, null, null]),
    row('2026-01-08T00:00:00Z', 0, [0, null, null, null]),
  ]);
});

test('weeks in Berlin: first signup, returns by purchase, before the signup in its week too', () => {
  const model = modelOfRows([
    ev('u1', '2026-01-03T10:00:00Z'),
    // Monday 00:30 in Berlin, before the signup: still the cohort's week.
    ev('u1', '2026-01-04T23:30:00Z', 'purchase'),
    ev('u1', '2026-01-05T09:00:00Z', 'signup'),
    ev('u1', '2026-01-13T09:00:00Z', 'purchase'),
    // Sunday 23:30 UTC is Monday in Berlin: the second week's cohort.
    ev('u2', '2026-01-11T23:30:00Z', 'signup'),
    ev('u2', '2026-01-20T10:00:00Z', 'purchase'),
    // Signed up before q.from: the later signup makes no cohort.
    ev('u3', '2025-12-30T10:00:00Z', 'signup'),
    ev('u3', '2026-01-06T10:00:00Z', 'signup'),
    ev('u3', '2026-01-06T11:00:00Z', 'purchase'),
    ev('u4', '2026-01-06T10:00:00Z'),
  ]);
  const got = ask([model], {
    from: '2026-01-05T00:00:00Z',
    to: '2026-01-19T00:00:00Z',
    period: 'week',
    periods: 2,
    tz: 'Europe/Berlin',
    cohort: ['event_type==signup'],
    back: ['event_type==purchase'],
  });
  assert.deepEqual(got.cohorts, [
    // Its local start is before q.from.
    row('2026-01-04T23:00:00Z', 1, [1, 1]),
    row('2026-01-11T23:00:00Z', 1, [0, 0]),
    row('2026-01-18T23:00:00Z', 0, [0, null]),
  ]);
});

test('days in New York across the spring change, with bots and global filters', () => {
  const model = modelOfRows([
    // Saturday 23:30 EST, then Sunday 23:30 EDT (a 23-hour day).
    ev('u1', '2026-03-08T04:30:00Z'),
    ev('u1', '2026-03-09T03:30:00Z'),
    // Monday 00:30 EDT.
    ev('u2', '2026-03-09T04:30:00Z', 'page_view', { country: 'DE' }),
    ev('bot0', '2026-03-08T12:00:00Z', 'page_view', { is_bot: true }),
  ]);
  const q: Ask = {
    from: '2026-03-07T05:00:00Z',
    to: '2026-03-10T04:00:00Z',
    period: 'day',
    periods: 3,
    tz: 'America/New_York',
  };
  assert.deepEqual(ask([model], q).cohorts, [
    row('2026-03-07T05:00:00Z', 1, [1, 1, 0]),
    row('2026-03-08T05:00:00Z', 0, [0, 0, null]),
    row('2026-03-09T04:00:00Z', 1, [1, null, null]),
  ]);
  assert.deepEqual(
    ask([model], { ...q, bots: 'only' }).cohorts.map((c) => c.users),
    [0, 1, 0],
  );
  assert.deepEqual(
    ask([model], { ...q, filters: ['country==DE'] }).cohorts.map((c) => c.users),
    [0, 0, 1],
  );
  assert.deepEqual(ask([model], { ...q, to: q.from }).cohorts, []);
});

// ---- Against the reference ----

const ZONES = [
  'UTC',
  'Europe/Berlin',
  'America/New_York',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'America/Sao_Paulo',
  'America/Havana',
  'Australia/Lord_Howe',
];

/** Mondays near offset changes: Sao Paulo's midnight ones (2018), spring and autumn 2026. */
const ERAS = [Date.UTC(2026, 0, 5), Date.UTC(2018, 9, 29), Date.UTC(2026, 2, 2), Date.UTC(2026, 9, 19)];

/** Local midnights of the zones above, as offsets from UTC midnight. */
const MIDNIGHTS = [
  0,
  -HOUR,
  -2 * HOUR,
  5 * HOUR,
  4 * HOUR,
  -5.5 * HOUR,
  -5.75 * HOUR,
  3 * HOUR,
  2 * HOUR,
  -10.5 * HOUR,
  -11 * HOUR,
];

/** A run's time unit: its events spread over tens of them, its questions mostly ask by it. */
const UNITS = { day: DAY, week: 7 * DAY, month: 30 * DAY };
const MAX_PERIODS = { day: 12, week: 8, month: 5 };

type Scale = keyof typeof UNITS;

/** A time (ms from the era) within [min, max] units: anywhere, or on (or beside) a local midnight. */
const timeArbOf = (unit: number, min: number, max: number) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: min * unit, max: max * unit }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.integer({ min: (min * unit) / DAY, max: (max * unit) / DAY }),
          oneOf(MIDNIGHTS),
          oneOf([-1, 0, 0, 1]),
        )
        .map(([d, midnight, ms]) => d * DAY + midnight + ms),
    },
  );

/** A user's later event: within a unit of its arrival (often the same period), or within five. */
const laterArbOf = (unit: number) => fc.oneof(fc.integer({ min: 0, max: unit }), timeArbOf(unit, 0, 5));

/**
 * Users (u0… and bots, as eventsOf names them) each arriving at some time and coming back a few
 * times over the next units, so that cohorts fill and later periods see returns.
 */
const usersArbOf = (scale: Scale, users: number, maxUsers: number) =>
  fc
    .array(
      fc.tuple(
        fc.nat(users),
        timeArbOf(UNITS[scale], -3, 10),
        fc.array(fc.tuple(eventArbOf(VALUES, { users: 0, hours: 0 }), laterArbOf(UNITS[scale])), {
          minLength: 1,
          maxLength: 6,
        }),
      ),
      { maxLength: maxUsers, size: 'max' },
    )
    .map((list) =>
      list.flatMap(([user, arrival, events]) =>
        events.map(([raw, later]): [RawEvent, number] => [{ ...raw, user }, arrival + later]),
      ),
    );

/** None (weight `none`), one of `common` (weight 4), or random ones (mostly selecting nothing). */
const filtersArb = (none: number, ...common: RefFilter[][]) =>
  fc.oneof(
    { weight: none, arbitrary: fc.constant<RefFilter[]>([]) },
    { weight: 4, arbitrary: oneOf(common) },
    { weight: 1, arbitrary: fc.array(filterArb, { minLength: 1, maxLength: 2 }) },
  );

const snapArb = fc.oneof(
  { weight: 2, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.tuple(fc.nat(), fc.integer({ min: -1, max: 1 })) },
);

const questionArbOf = (scale: Scale) =>
  fc.record({
    period: fc.oneof(
      { weight: 3, arbitrary: fc.constant(scale) },
      { weight: 1, arbitrary: oneOf<RetentionPeriod>(['day', 'week', 'month']) },
    ),
    periods: fc.integer({ min: 1, max: 12 }),
    tz: oneOf(ZONES),
    from: fc.integer({ min: -2 * UNITS[scale], max: 6 * UNITS[scale] }),
    span: fc.oneof(
      { weight: 1, arbitrary: fc.constant(0) },
      { weight: 12, arbitrary: fc.integer({ min: 1, max: 10 * UNITS[scale] }) },
    ),
    // Often a bound on an event's own time, or 1 ms beside it.
    snapFrom: snapArb,
    snapTo: snapArb,
    bots: oneOf<Bots>(['exclude', 'exclude', 'include', 'only']),
    filters: filtersArb(
      5,
      [{ dim: 'event_type', op: '!=', values: ['click'] }],
      [{ dim: 'channel', op: '!=', values: ['Email'] }],
      [{ dim: 'country', op: '==', values: ['US', '(none)'] }],
    ),
    cohortFilters: filtersArb(
      3,
      [{ dim: 'event_type', op: '==', values: ['signup'] }],
      [{ dim: 'event_type', op: '==', values: ['signup'] }],
      [{ dim: 'event_type', op: '==', values: ['click'] }],
      [{ dim: 'page', op: '~=', values: ['blog'] }],
      [{ dim: 'utm_source', op: '==', values: ['newsletter'] }],
    ),
    returnFilters: filtersArb(
      3,
      [{ dim: 'event_type', op: '==', values: ['click'] }],
      [{ dim: 'event_type', op: '!=', values: ['signup'] }],
      [{ dim: 'page', op: '~=', values: ['blog'] }],
      [{ dim: 'country', op: '==', values: ['(none)'] }],
      [{ dim: 'entry_page', op: '==', values: ['/pricing'] }],
    ),
  });

type QuestionArb = ReturnType<typeof questionArbOf> extends fc.Arbitrary<infer T> ? T : never;

/** The question of `qa` for a run of era `era` whose events (hidden ones included) had `times`. */
function questionOf(qa: QuestionArb, era: number, times: readonly number[]): RefRetentionQuestion {
  const snap = (s: [number, number] | null, t: number) =>
    s === null || times.length === 0 ? t : times[s[0] % times.length] + s[1];
  const from = snap(qa.snapFrom, era + qa.from);
  // At most 40 periods: the reference walks each one hour by hour.
  const to = from + Math.min(qa.span, 40 * UNITS[qa.period]);
  const snapped = snap(qa.snapTo, to);
  return {
    from,
    to: snapped > from ? snapped : to,
    bots: qa.bots,
    filters: qa.filters,
    period: qa.period,
    periods: Math.min(qa.periods, MAX_PERIODS[qa.period]),
    tz: qa.tz,
    cohortFilters: qa.cohortFilters,
    returnFilters: qa.returnFilters,
  };
}

function answerOf(models: readonly ColumnarModel[], q: RefRetentionQuestion): RetentionAnswer {
  return retention(models, {
    ...q,
    filters: q.filters.map(toFilter),
    cohortFilters: q.cohortFilters.map(toFilter),
    returnFilters: q.returnFilters.map(toFilter),
  });
}

const dropEveryArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.integer({ min: 2, max: 5 }) },
);

const dropped = (visits: Visit[], every: number) => visits.filter((_, i) => every === 0 || i % every !== 0);

/** The events of these raws at their times from the era. */
const timed = (raws: [RawEvent, number][], era: number, prefix: string) =>
  eventsOf(raws.map(([r]) => r)).map((e, i) => ({
    ...e,
    event_id: `${prefix}${e.event_id}`,
    ts: era + raws[i][1],
  }));

const singleRunArb = oneOf<Scale>(['day', 'week', 'month']).chain((scale) =>
  fc.record({
    era: oneOf(ERAS),
    raws: usersArbOf(scale, 14, 20),
    dropEvery: dropEveryArb,
    questions: fc.array(questionArbOf(scale), { minLength: 1, maxLength: 4 }),
  }),
);

test('retention equals the reference: any period, zone, cohort and return filters, bots, global filters', () => {
  fc.assert(
    fc.property(singleRunArb, ({ era, raws, dropEvery, questions }) => {
      const events = timed(raws, era, '');
      const visits = dropped(sessionize(events, TIMEOUT), dropEvery);
      const model = modelOf(events, visits);
      const times = events.map((e) => e.ts);
      for (const qa of questions) {
        const q = questionOf(qa, era, times);
        assert.deepEqual(answerOf([model], q), refRetention(events, visits, q), JSON.stringify(q));
      }
    }),
    { numRuns: 300 },
  );
});

/** Every user a step may push (u0…u19, bot0, bot1), some never in the base's events. */
const POOL = [...Array.from({ length: 20 }, (_, i) => `u${i}`), 'bot0', 'bot1'];

const layersRunArb = oneOf<Scale>(['day', 'week']).chain((scale) =>
  fc.record({
    era: oneOf(ERAS),
    base: usersArbOf(scale, 14, 15),
    dropEvery: dropEveryArb,
    steps: fc.array(
      fc.record({
        raws: usersArbOf(scale, 19, 5),
        // Users pushed with no rows at all: they must vanish.
        emptied: fc.subarray(POOL, { maxLength: 3 }),
        dropEvery: dropEveryArb,
      }),
      { minLength: 1, maxLength: 3 },
    ),
    questions: fc.array(questionArbOf(scale), { minLength: 1, maxLength: 3 }),
  }),
);

test('retention over layers with pushed deltas equals the reference over the final rows', () => {
  fc.assert(
    fc.property(layersRunArb, ({ era, base, dropEvery, steps, questions }) => {
      const rows = new Map<string, { events: WebEvent[]; visits: Visit[] }>();
      const keep = (events: WebEvent[], visits: Visit[]) => {
        const of = (user: string) => rows.get(user) ?? rows.set(user, { events: [], visits: [] }).get(user)!;
        for (const e of events) of(e.user_id).events.push(e);
        for (const v of visits) of(v.user_id).visits.push(v);
      };
      const baseEvents = timed(base, era, 'b');
      const baseVisits = dropped(sessionize(baseEvents, TIMEOUT), dropEvery);
      keep(baseEvents, baseVisits);
      const layers = new Layers(modelOf(baseEvents, baseVisits));
      const times = baseEvents.map((e) => e.ts);

      for (const [s, step] of steps.entries()) {
        const emptied = new Set(step.emptied);
        const events = timed(step.raws, era, `s${s}`).filter((e) => !emptied.has(e.user_id));
        const visits = dropped(sessionize(events, TIMEOUT), step.dropEvery);
        const users = [...new Set([...events.map((e) => e.user_id), ...emptied])];
        layers.push(modelOf(events, visits), users);
        for (const u of users) rows.delete(u);
        keep(events, visits);
        times.push(...events.map((e) => e.ts));

        const all = [...rows.values()];
        const finalEvents = all.flatMap((r) => r.events);
        const finalVisits = all.flatMap((r) => r.visits);
        for (const qa of questions) {
          const q = questionOf(qa, era, times);
          assert.deepEqual(
            answerOf(layers.models, q),
            refRetention(finalEvents, finalVisits, q),
            `step ${s}: ${JSON.stringify(q)}`,
          );
        }
      }
    }),
    { numRuns: 120 },
  );
});
