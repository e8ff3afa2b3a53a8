import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { getJson, postJson, startTestTally } from '../helpers/embedded-tally.ts';
import { analyticsClient } from '../helpers/grpc-client.ts';

/**
 * Issue 21 through the running service: funnels, retention and paths over REST and gRPC, from the
 * read model and without it (the raw rows read for the one answer), on a small data set whose
 * answers are worked out by hand below; and the refusals (a bad step, too many raw events).
 */

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
/** A Monday: week cohorts start here. */
const T = Date.UTC(2025, 0, 6, 10, 0, 0);
const iso = (t: number) => new Date(t).toISOString();
const page = (path: string) => `https://example.com${path}`;

// a: / → /pricing (10 min) → signup (10 min) in one visit, and / again 8 days later.
// b: / → /pricing (5 min), no signup.  c: /pricing → signup: never did step 1.
const EVENTS = [
  { user_id: 'a', type: 'page_view', page_url: page('/'), at: T },
  { user_id: 'a', type: 'page_view', page_url: page('/pricing'), at: T + 10 * MINUTE },
  { user_id: 'a', type: 'signup', at: T + 20 * MINUTE },
  { user_id: 'a', type: 'page_view', page_url: page('/'), at: T + 8 * DAY },
  { user_id: 'b', type: 'page_view', page_url: page('/'), at: T },
  { user_id: 'b', type: 'page_view', page_url: page('/pricing'), at: T + 5 * MINUTE },
  { user_id: 'c', type: 'page_view', page_url: page('/pricing'), at: T },
  { user_id: 'c', type: 'signup', at: T + 10 * MINUTE },
].map(({ at, ...e }, i) => ({ ...e, event_id: `p-${i}`, timestamp: iso(at) }));

const RANGE = { from: iso(Date.UTC(2025, 0, 6)), to: iso(Date.UTC(2025, 0, 20)) };
const FUNNEL = {
  ...RANGE,
  steps: [{ page: '/' }, { page: '/pricing' }, { event_type: 'signup' }],
  window: '1d',
};
const COVERS = { from: RANGE.from, to: RANGE.to };

const WANT_FUNNEL = {
  ...RANGE,
  covers: COVERS,
  count_by: 'user',
  order: 'strict',
  window_seconds: 86_400,
  steps: [
    {
      step: 1,
      label: '/',
      count: 2,
      conversion_from_first: 100,
      conversion_from_previous: null,
      median_seconds_from_previous: null,
    },
    {
      step: 2,
      label: '/pricing',
      count: 2,
      conversion_from_first: 100,
      conversion_from_previous: 100,
      median_seconds_from_previous: 450,
    },
    {
      step: 3,
      label: 'signup',
      count: 1,
      conversion_from_first: 50,
      conversion_from_previous: 50,
      median_seconds_from_previous: 600,
    },
  ],
};

const RETENTION = { ...RANGE, period: 'week', periods: '3' };
const WANT_COHORTS = [
  {
    start: iso(Date.UTC(2025, 0, 6)),
    date: '2025-01-06',
    users: 3,
    returned: [3, 1, null],
    retention: [100, 33.3, null],
  },
  {
    start: iso(Date.UTC(2025, 0, 13)),
    date: '2025-01-13',
    users: 0,
    returned: [0, null, null],
    retention: [null, null, null],
  },
];

const PATHS = { ...RANGE, anchor: '/', depth: '2' };
const WANT_LEVELS = [
  {
    depth: 1,
    items: [
      { path: ['/pricing'], count: 2, percentage: 66.7 },
      { path: [null], count: 1, percentage: 33.3 },
    ],
    other: 0,
  },
  {
    depth: 2,
    items: [
      { path: ['/pricing', null], count: 2, percentage: 66.7 },
      { path: [null, null], count: 1, percentage: 33.3 },
    ],
    other: 0,
  },
];

async function started(t: TestContext, env: Record<string, string> = {}) {
  const tally = await startTestTally(t, env);
  const sent = await postJson(`${tally.url}/v1/events`, EVENTS);
  assert.equal(sent.status, 202, JSON.stringify(sent.body));
  return tally;
}

async function assertAnswers(url: string): Promise<void> {
  const funnel = await postJson(`${url}/v1/stats/funnel`, FUNNEL);
  assert.equal(funnel.status, 200, JSON.stringify(funnel.body));
  assert.deepEqual(funnel.body, WANT_FUNNEL);

  const retention = await getJson(`${url}/v1/stats/retention?${new URLSearchParams(RETENTION).toString()}`);
  assert.equal(retention.status, 200, JSON.stringify(retention.body));
  assert.deepEqual(retention.body.cohorts, WANT_COHORTS);
  // No raw retention: first seen is over every event ever stored.
  assert.equal(retention.body.first_seen_since, null);

  const paths = await getJson(`${url}/v1/stats/paths?${new URLSearchParams(PATHS).toString()}`);
  assert.equal(paths.status, 200, JSON.stringify(paths.body));
  assert.equal(paths.body.anchors, 3);
  assert.deepEqual(paths.body.levels, WANT_LEVELS);
}

test(
  'funnel, retention and paths over REST and gRPC equal the worked answers',
  { timeout: 120_000 },
  async (t) => {
    const tally = await started(t);
    await assertAnswers(tally.url);

    const client = analyticsClient(tally.grpcPort);
    t.after(() => client.close());
    const funnel = await client.call('GetFunnel', {
      ...FUNNEL,
      steps: FUNNEL.steps.map((s) => ({ ...s })),
    });
    assert.deepEqual(
      (funnel.steps as Record<string, unknown>[]).map((s) => [
        s.count,
        s.median_seconds_from_previous ?? null,
      ]),
      [
        [2, null],
        [2, 450],
        [1, 600],
      ],
    );
    const retention = await client.call('GetRetention', { ...RETENTION, periods: 3 });
    const cohorts = retention.cohorts as { users: number; periods: { returned?: number }[] }[];
    assert.deepEqual(
      cohorts.map((c) => [c.users, c.periods.map((p) => p.returned ?? null)]),
      [
        [3, [3, 1, null]],
        [0, [0, null, null]],
      ],
    );
    const paths = await client.call('GetPaths', { ...PATHS, depth: 2 });
    const levels = paths.levels as { items: { path: { value?: string }[]; count: number }[] }[];
    assert.deepEqual(
      levels.map((l) => l.items.map((i) => [i.path.map((p) => p.value ?? null), i.count])),
      WANT_LEVELS.map((l) => l.items.map((i) => [i.path, i.count])),
    );
    await assert.rejects(
      client.call('GetFunnel', { ...FUNNEL, steps: [{ page: '/' }] }),
      (err: { details?: string }) => /^steps/.test(err.details ?? ''),
    );

    // A bad step is named; the answer is a coded 400.
    const bad = await postJson(`${tally.url}/v1/stats/funnel`, {
      ...FUNNEL,
      steps: [{ page: '/' }, { filter: ['colour==red'] }],
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'TALLY_INVALID_QUERY');
    assert.match(JSON.stringify(bad.body), /steps\[1\]\.filter\[0\]/);
  },
);

test(
  'without the read model the same answers come from the raw rows; too many of them: 422',
  { timeout: 120_000 },
  async (t) => {
    const off = await started(t, { TALLY_READ_MODEL: 'off' });
    await assertAnswers(off.url);
    const capped = await started(t, { TALLY_READ_MODEL: 'off', TALLY_PRODUCT_MAX_SCAN_EVENTS: '5' });
    const refused = await postJson(`${capped.url}/v1/stats/funnel`, FUNNEL);
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'TALLY_QUERY_TOO_EXPENSIVE');
  },
);
