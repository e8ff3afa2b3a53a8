import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Layers } from '../../../src/query/columnar/layers.ts';
import { parseFilters } from '../../../src/query/filters.ts';
import { paths, type PathsAnswer, type PathsQuestion } from '../../../src/query/product/paths.ts';
import {
  BASE,
  DIMENSIONS,
  FILTER_VALUES,
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
  type Values,
} from '../columnar-arbitraries.ts';
import { sessionize, webEventOf, type Visit, type WebEvent } from '../web-fixtures.ts';
import type { RefFilter } from '../web-reference.ts';
import { refPaths, type RefPathsQuestion } from './paths-reference.ts';

/**
 * Paths (src/query/product/paths.ts) against the from-scratch reference (paths-reference.ts) on
 * random events, visits, filters, bots and ragged ranges, over one model and over layers with
 * users pushed to deltas; and a few readable examples.
 */

function event(user_id: string, ts: number, path: string | null, more: Partial<WebEvent> = {}): WebEvent {
  return webEventOf({
    event_id: `${user_id}-${ts}-${path}-${more.type ?? 'page_view'}`,
    user_id,
    ts,
    path,
    hostname: path === null ? null : 'example.com',
    browser: 'Chrome',
    os: 'iOS',
    device: 'mobile',
    ...more,
  });
}

/** Page views of one user, a minute apart from `start`: one visit. */
const visitOf = (user: string, start: number, pages: (string | null)[]) =>
  pages.map((p, i) => event(user, start + i * MINUTE, p));

const ask = (events: WebEvent[], q: Partial<PathsQuestion>): PathsAnswer =>
  paths([modelOf(events, sessionize(events, TIMEOUT))], {
    from: BASE,
    to: BASE + 24 * HOUR,
    bots: 'exclude',
    filters: [],
    by: 'page',
    anchor: '/',
    direction: 'next',
    depth: 3,
    limit: 10,
    ...q,
  });

test('next pages after an anchor, to depth 2, with null where the visit ends', () => {
  const events = [
    ...visitOf('a', BASE, ['/', '/pricing', '/signup', '/']),
    ...visitOf('b', BASE, ['/blog', '/', '/pricing']),
  ];
  assert.deepEqual(ask(events, { depth: 2 }), {
    anchors: 3,
    levels: [
      {
        depth: 1,
        items: [
          { path: ['/pricing'], count: 2 },
          { path: [null], count: 1 },
        ],
        other: 0,
      },
      {
        depth: 2,
        items: [
          { path: ['/pricing', '/signup'], count: 1 },
          { path: ['/pricing', null], count: 1 },
          { path: [null, null], count: 1 },
        ],
        other: 0,
      },
    ],
  });
});

test('previous pages, nearest first, with null where the visit begins; the limit folds the rest into other', () => {
  const events = [
    ...visitOf('a', BASE, ['/a', '/b', '/x']),
    ...visitOf('b', BASE, ['/b', '/x']),
    ...visitOf('c', BASE, ['/x', '/c', '/x']),
  ];
  const answer = ask(events, { anchor: '/x', direction: 'previous', depth: 3, limit: 1 });
  assert.equal(answer.anchors, 4);
  assert.deepEqual(answer.levels[0], { depth: 1, items: [{ path: ['/b'], count: 2 }], other: 2 });
  // ['/b', '/a', null], ['/b', null, null], ['/c', '/x', null], [null, null, null]: ties by path.
  assert.deepEqual(answer.levels[2], { depth: 3, items: [{ path: ['/b', '/a', null], count: 1 }], other: 3 });
});

test('NULL pages take no part; events of equal time order by value; each visit stands alone', () => {
  const events = [
    event('a', BASE, '/'),
    event('a', BASE + MINUTE, null, { type: 'click' }),
    // Same time: '/b' follows '/a' whatever the order they came in.
    event('a', BASE + 2 * MINUTE, '/b'),
    event('a', BASE + 2 * MINUTE, '/a'),
    // Two hours later: a visit of its own, so '/' there has no previous page.
    event('a', BASE + 2 * HOUR, '/'),
  ];
  assert.deepEqual(ask(events, { depth: 2 }).levels[1].items, [
    { path: ['/a', '/b'], count: 1 },
    { path: [null, null], count: 1 },
  ]);
  assert.deepEqual(ask(events, { direction: 'previous', depth: 1 }).levels[0].items, [
    { path: [null], count: 2 },
  ]);
  assert.deepEqual(ask(events, { by: 'event_type', anchor: 'click', depth: 1 }).levels[0].items, [
    { path: ['page_view'], count: 1 },
  ]);
});

test('bots, global filters and an absent anchor', () => {
  const events = [
    ...visitOf('a', BASE, ['/', '/pricing']),
    ...visitOf('bot', BASE, ['/', '/admin']).map((e) => ({ ...e, is_bot: true })),
    ...visitOf('c', BASE, ['/', '/blog']).map((e) => ({ ...e, country: 'DE' })),
  ];
  const next = (answer: PathsAnswer) => answer.levels[0].items.map((i) => i.path[0]);
  assert.deepEqual(next(ask(events, { depth: 1 })), ['/blog', '/pricing']);
  assert.deepEqual(next(ask(events, { depth: 1, bots: 'only' })), ['/admin']);
  assert.deepEqual(next(ask(events, { depth: 1, filters: parseFilters(['country==DE']) })), ['/blog']);
  assert.deepEqual(ask(events, { anchor: '/nowhere', depth: 2 }), {
    anchors: 0,
    levels: [
      { depth: 1, items: [], other: 0 },
      { depth: 2, items: [], other: 0 },
    ],
  });
});

/** Few users and pages, so visits are long and anchors repeat; coarse times make ties. */
const rawsArb = (values: Values, users: number) =>
  fc
    .tuple(
      fc.array(eventArbOf(values, { users, hours: 3 }), { minLength: 1, maxLength: 80, size: 'medium' }),
      fc.boolean(),
    )
    .map(([raws, coarse]) =>
      coarse ? raws.map((r) => ({ ...r, offset: (r.offset % 5) * 10 * MINUTE })) : raws,
    );

const VISIT_DIMENSIONS = ['entry_page', 'exit_page', 'referrer', 'channel', 'utm_source'];

const filtersArb = (dimensions: readonly string[], filterValues: readonly string[]) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant<RefFilter[]>([]) },
    { weight: 2, arbitrary: fc.array(filterArbOf(dimensions, filterValues), { minLength: 1, maxLength: 2 }) },
    {
      weight: 1,
      arbitrary: fc.array(filterArbOf(VISIT_DIMENSIONS, filterValues), { minLength: 1, maxLength: 1 }),
    },
  );

const shapeArb = (values: Values) =>
  fc
    .record({
      by: oneOf(['page', 'event_type'] as const),
      pick: fc.nat(),
      direction: oneOf(['next', 'previous'] as const),
      depth: fc.integer({ min: 1, max: 3 }),
      limit: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 100 })),
    })
    .map(({ pick, ...s }) => {
      const anchors = [...(s.by === 'page' ? values.path : values.type), '/nowhere'].filter(
        (v) => v !== null,
      );
      return { ...s, anchor: anchors[pick % anchors.length] };
    });

const questionArb = (values: Values, dimensions: readonly string[], filterValues: readonly string[]) =>
  fc.record({
    range: questionArbOf(filtersArb(dimensions, filterValues), dimensions),
    // Often every stored event, so that most questions meet anchors.
    wide: fc.boolean(),
    shape: shapeArb(values),
  });

type Asked = ReturnType<typeof questionArb> extends fc.Arbitrary<infer T> ? T : never;

/** The question at ranges snapped to the stored times (or beside them), as engine and reference read it. */
function questionOf({ range, wide, shape }: Asked, times: readonly number[]): RefPathsQuestion {
  const snap = (at: [number, number] | null, t: number) =>
    at === null || times.length === 0 ? t : times[at[0] % times.length] + at[1];
  const from = wide ? BASE - HOUR : snap(range.snapFrom, BASE + range.from);
  const to = wide ? BASE + 9 * HOUR : snap(range.snapTo, from + range.span);
  return { from, to, filters: range.filters, bots: range.bots, ...shape };
}

function assertSamePaths(
  models: Parameters<typeof paths>[0],
  events: WebEvent[],
  visits: Visit[],
  q: RefPathsQuestion,
) {
  const got = paths(models, { ...q, filters: q.filters.map(toFilter) });
  assert.deepEqual(got, refPaths(events, visits, q));
  for (const level of got.levels) {
    assert.equal(
      level.items.reduce((s, i) => s + i.count, level.other),
      got.anchors,
      'counts + other = anchors',
    );
  }
}

const dropEveryArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.integer({ min: 2, max: 5 }) },
);

const dropped = (visits: Visit[], every: number) => visits.filter((_, i) => every === 0 || i % every !== 0);

test('paths equal the reference on one model, for random events, filters, bots and ranges', () => {
  fc.assert(
    fc.property(
      rawsArb(VALUES, 3),
      dropEveryArb,
      fc.array(questionArb(VALUES, DIMENSIONS, FILTER_VALUES), { minLength: 1, maxLength: 4 }),
      (raws, dropEvery, questions) => {
        const events = eventsOf(raws);
        // Some visits missing from tally.sessions: their events then belong to no visit.
        const visits = dropped(sessionize(events, TIMEOUT), dropEvery);
        const model = modelOf(events, visits);
        const times = events.map((e) => e.ts);
        for (const asked of questions) assertSamePaths([model], events, visits, questionOf(asked, times));
      },
    ),
    { numRuns: 400 },
  );
});

/** Values the base never has: the deltas' dictionaries hold other codes in another order. */
const LATER: Values = {
  ...VALUES,
  type: ['signup', 'purchase', ...VALUES.type],
  path: ['/later', '/Blog/B', '/0', ...VALUES.path],
  session: [...VALUES.session, 's3'],
};
const LATER_FILTER_VALUES = filterValuesOf(LATER);
const POOL = [...Array.from({ length: 6 }, (_, i) => `u${i}`), 'bot0', 'bot1'];

const stepArb = fc.record({
  raws: rawsArb(LATER, 5),
  // Users pushed with no rows at all: they must vanish.
  emptied: fc.subarray(POOL, { maxLength: 3 }),
  dropEvery: dropEveryArb,
});

/** Each user's current rows. */
type Rows = Map<string, { events: WebEvent[]; visits: Visit[] }>;

function keep(rows: Rows, events: readonly WebEvent[], visits: readonly Visit[]): void {
  const of = (user: string) => rows.get(user) ?? rows.set(user, { events: [], visits: [] }).get(user)!;
  for (const e of events) of(e.user_id).events.push(e);
  for (const v of visits) of(v.user_id).visits.push(v);
}

test('paths over layers equal the reference over the final rows, for any pushes of whole users', () => {
  fc.assert(
    fc.property(
      rawsArb(VALUES, 3),
      dropEveryArb,
      fc.array(stepArb, { minLength: 1, maxLength: 3 }),
      fc.array(questionArb(LATER, DIMENSIONS, LATER_FILTER_VALUES), { minLength: 1, maxLength: 3 }),
      (raws, dropEvery, steps, questions) => {
        const rows: Rows = new Map();
        const baseEvents = eventsOf(raws);
        const baseVisits = dropped(sessionize(baseEvents, TIMEOUT), dropEvery);
        keep(rows, baseEvents, baseVisits);
        const layers = new Layers(modelOf(baseEvents, baseVisits));
        const times = baseEvents.map((e) => e.ts);
        for (const step of steps) {
          const emptied = new Set(step.emptied);
          // Distinct ids from the base's: eventsOf numbers from e000 in every step.
          const events = eventsOf(step.raws)
            .map((e) => ({ ...e, event_id: `${times.length}-${e.event_id}` }))
            .filter((e) => !emptied.has(e.user_id));
          const visits = dropped(sessionize(events, TIMEOUT), step.dropEvery);
          const users = [...new Set([...events.map((e) => e.user_id), ...emptied])];
          layers.push(modelOf(events, visits), users);
          for (const u of users) rows.delete(u);
          keep(rows, events, visits);
          times.push(...events.map((e) => e.ts));

          const all = [...rows.values()];
          const finalEvents = all.flatMap((r) => r.events);
          const finalVisits = all.flatMap((r) => r.visits);
          for (const asked of questions) {
            assertSamePaths(layers.models, finalEvents, finalVisits, questionOf(asked, times));
          }
        }
      },
    ),
    { numRuns: 250 },
  );
});

test('paths past a few thousand distinct per level (the level tables grow) equal the reference, over layers too', () => {
  const visitsOf = (users: number[], tag: string) =>
    users.flatMap((u) =>
      visitOf(`u${u}`, BASE + (u % 50) * MINUTE, [
        '/',
        `/p/${u % 4500}`,
        u % 3 === 0 ? '/' : `/q/${tag}${u}`,
        `/r/${u % 5}`,
        u % 7 === 0 ? null : '/',
      ]),
    );
  const all = Array.from({ length: 5000 }, (_, u) => u);
  const baseEvents = visitsOf(all, 'b');
  const layers = new Layers(modelOf(baseEvents, sessionize(baseEvents, TIMEOUT)));
  // Pushed users: some of the base's paths again, some new ones.
  const pushed = all.filter((u) => u % 25 === 0);
  const deltaEvents = visitsOf(pushed, 'd');
  layers.push(
    modelOf(deltaEvents, sessionize(deltaEvents, TIMEOUT)),
    pushed.map((u) => `u${u}`),
  );
  const kept = new Set(pushed.map((u) => `u${u}`));
  const events = [...baseEvents.filter((e) => !kept.has(e.user_id)), ...deltaEvents];
  const visits = sessionize(events, TIMEOUT);
  for (const direction of ['next', 'previous'] as const) {
    const q: RefPathsQuestion = {
      from: BASE,
      to: BASE + HOUR * 2,
      bots: 'exclude',
      filters: [],
      by: 'page',
      anchor: '/',
      direction,
      depth: 3,
      limit: 5,
    };
    assertSamePaths(layers.models, events, visits, q);
    assertSamePaths([modelOf(events, visits)], events, visits, q);
  }
});
