import assert from 'node:assert/strict';
import { sessionize as fixtureSessionize, type WebEvent } from '../query/web-fixtures.ts';
import {
  Reference,
  refMetric,
  refSummary,
  type Bots,
  type Question,
  type RefCounts,
  type RefFilter,
} from '../query/web-reference.ts';
import { refFunnel, type RefFunnelQuestion } from '../query/product/funnel-reference.ts';
import { refPaths, type RefPathsQuestion } from '../query/product/paths-reference.ts';
import { refRetention, type RefRetentionQuestion } from '../query/product/retention-reference.ts';
import type { Visit as FixtureVisit } from '../query/web-fixtures.ts';
import { getJson, postJson } from './embedded-tally.ts';
import { pool } from './oracle.ts';
import { compareC, sessionize, storedVisits, type Visit } from './sessionizer.ts';
import { sessionizerEvent, TIMEOUT_MS, type Generated } from './web-traffic.ts';

/**
 * The expected web analytics answers for generated traffic (./web-traffic.ts), from scratch: the
 * visits by the reference sessionizer over the unique events, the counts by the contract's
 * semantics (test/query/web-reference.ts), and the assertions that compare a running Tally's
 * REST answers and tally.sessions with them.
 */

export const BREAKDOWN_METRICS = ['visitors', 'visits', 'page_views', 'events', 'bounce_rate'];

export class WebOracle {
  readonly events: WebEvent[];
  /** Every visit, bots too (the rows tally.sessions must hold), by the reference sessionizer. */
  readonly visits: Visit[];
  readonly #ref: Reference;
  /** The visits with their events, as the issue-20 and issue-21 references read them. */
  readonly #visitsWithMembers: FixtureVisit[];

  constructor(generated: readonly Generated[]) {
    this.events = generated.map((g) => g.event);
    this.visits = sessionize(
      this.events.map((e) => sessionizerEvent(e)),
      TIMEOUT_MS,
    );
    // web-reference.ts wants its own visit shape (with members); both sessionizers must agree.
    const withMembers = fixtureSessionize(this.events, TIMEOUT_MS);
    assert.deepEqual(
      withMembers.map((v) => [v.user_id, v.session_key, v.started_at, v.ended_at, v.events]).sort(byTuple),
      this.visits.map((v) => [v.userId, v.sessionKey, v.startedAt, v.endedAt, v.events]).sort(byTuple),
      'the two reference sessionizers agree',
    );
    this.#ref = new Reference(this.events, withMembers);
    this.#visitsWithMembers = withMembers;
    for (const v of withMembers) {
      const key = JSON.stringify([v.user_id, v.session_key, v.started_at]);
      for (const e of v.members) this.#visitKey.set(e.event_id, key);
    }
  }

  readonly #visitKey = new Map<string, string>();

  /** How many of this oracle's visits hold events that were in two or more visits of `earlier`. */
  mergedFrom(earlier: WebOracle): number {
    const parts = new Map<string, Set<string>>();
    for (const [id, key] of earlier.#visitKey) {
      const now = this.#visitKey.get(id)!;
      parts.set(now, (parts.get(now) ?? new Set()).add(key));
    }
    return [...parts.values()].filter((p) => p.size > 1).length;
  }

  /** Issue 21's reference answers over the same events and visits. */
  product(): ProductOracle {
    return new ProductOracle(this, this.#visitsWithMembers);
  }

  summary(q: Question) {
    return refSummary(this.#ref.totals(q));
  }

  /** Every row (limit 1000, page 1) of a breakdown with `metrics`, default sort: the first metric desc, then value. */
  breakdown(q: Question, dimension: string, metrics: readonly string[]) {
    const rows = [...this.#ref.groups(q, dimension)]
      .filter(([, c]) => c.events > 0 || c.visits.length > 0)
      .map(([key, c]) => ({ key, value: key ?? '(none)', c, s: refMetric(metrics[0], c) }));
    rows.sort((a, b) => {
      if (a.s !== b.s) {
        if (a.s === null) return 1;
        if (b.s === null) return -1;
        return b.s - a.s;
      }
      if (a.value !== b.value) return a.value < b.value ? -1 : 1;
      return (a.key === null ? 1 : 0) - (b.key === null ? 1 : 0);
    });
    const base = metrics.includes('visitors') ? 'visitors' : metrics[0];
    const total = this.#ref.totals(q);
    const whole = refMetric(base, total);
    const values = (c: RefCounts) => Object.fromEntries(metrics.map((m) => [m, refMetric(m, c)]));
    assert.ok(rows.length <= 1000, 'the suites ask for every row at once');
    return {
      dimension,
      from: new Date(q.from).toISOString(),
      to: new Date(q.to).toISOString(),
      metrics: [...metrics],
      results: rows.map((r) => {
        const part = refMetric(base, r.c);
        return {
          value: r.value,
          ...values(r.c),
          percentage:
            part === null || whole === null || whole === 0 ? null : Math.round((1000 * part) / whole) / 10,
        };
      }),
      total: values(total),
      page: 1,
      limit: 1000,
      has_more: false,
    };
  }
}

/** Issue 21's answers from scratch (test/query/product/*-reference.ts), next to issue 20's. */
export class ProductOracle {
  readonly #oracle: WebOracle;
  readonly #visits: FixtureVisit[];

  constructor(oracle: WebOracle, visits: FixtureVisit[]) {
    this.#oracle = oracle;
    this.#visits = visits;
  }

  /** Counts and medians (seconds) per step; no breakdown, so the order of equal times plays no part. */
  funnel(q: RefFunnelQuestion) {
    const a = refFunnel(this.#oracle.events, this.#visits, q, () => 0);
    return a.steps.map((s) => [
      s.count,
      s.medianMsFromPrevious === null ? null : s.medianMsFromPrevious / 1000,
    ]);
  }

  retention(q: RefRetentionQuestion) {
    return refRetention(this.#oracle.events, this.#visits, q).cohorts.map((c) => ({
      start: new Date(c.start).toISOString(),
      users: c.users,
      returned: c.returned,
    }));
  }

  paths(q: RefPathsQuestion) {
    return refPaths(this.#oracle.events, this.#visits, q);
  }
}

const filterText = (f: RefFilter) => `${f.dim}${f.op}${f.values.map(escapeValue).join('|')}`;

/** Asserts a running Tally's funnel, retention and paths for traffic in [from, to) equal the oracle's. */
export async function assertProduct(url: string, oracle: WebOracle, from: number, to: number): Promise<void> {
  const product = oracle.product();
  const range = { from: new Date(from).toISOString(), to: new Date(to).toISOString() };
  const page = (p: string): RefFilter[] => [
    { dim: 'event_type', op: '==', values: ['page_view'] },
    { dim: 'page', op: '==', values: [p] },
  ];
  const type = (t: string): RefFilter[] => [{ dim: 'event_type', op: '==', values: [t] }];
  const mobile: RefFilter = { dim: 'device', op: '==', values: ['mobile', 'tablet'] };
  const shapes: Pick<RefFunnelQuestion, 'steps' | 'windowMs' | 'unit' | 'order'>[] = [
    {
      steps: [page('/'), page('/pricing'), type('purchase')],
      windowMs: 60 * 60_000,
      unit: 'user',
      order: 'strict',
    },
    {
      steps: [page('/pricing'), type('click'), page('/cart')],
      windowMs: 20 * 60_000,
      unit: 'visit',
      order: 'strict',
    },
    {
      steps: [type('signup'), page('/docs'), type('click')],
      windowMs: 3 * 60 * 60_000,
      unit: 'user',
      order: 'any',
    },
  ];
  const funnels: RefFunnelQuestion[] = shapes.map((f) => ({
    from,
    to,
    bots: 'exclude',
    filters: [],
    breakdown: null,
    ...f,
  }));
  funnels.push({ ...funnels[0], filters: [mobile], bots: 'include' });
  for (const f of funnels) {
    const body = {
      ...range,
      steps: f.steps.map((filters) => ({ filter: filters.map(filterText) })),
      window: `${f.windowMs / 60_000}m`,
      count_by: f.unit,
      order: f.order,
      bots: f.bots,
      ...(f.filters.length > 0 ? { filter: f.filters.map(filterText) } : {}),
    };
    const res = await postJson(`${url}/v1/stats/funnel`, body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const steps = res.body.steps as { count: number; median_seconds_from_previous: number | null }[];
    assert.deepEqual(
      steps.map((s) => [s.count, s.median_seconds_from_previous]),
      product.funnel(f),
      `funnel ${JSON.stringify(body)}`,
    );
    assert.ok(steps[1].count > 0, `funnel ${JSON.stringify(body)}: someone reaches step 2`);
  }

  for (const [period, tz] of [
    ['day', 'Asia/Kolkata'],
    ['week', 'UTC'],
  ] as const) {
    const q: RefRetentionQuestion = {
      from,
      to,
      bots: 'exclude',
      filters: [],
      period,
      periods: 3,
      tz,
      cohortFilters: [],
      returnFilters: period === 'day' ? type('purchase') : [],
    };
    const qs = new URLSearchParams({ ...range, period, periods: '3', tz });
    if (period === 'day') qs.set('return_event', 'purchase');
    const res = await getJson<{ cohorts: { start: string; users: number; returned: (number | null)[] }[] }>(
      `${url}/v1/stats/retention?${qs.toString()}`,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(
      res.body.cohorts.map((c) => ({ start: c.start, users: c.users, returned: c.returned })),
      product.retention(q),
      `retention ${qs.toString()}`,
    );
  }

  for (const [by, anchor, direction] of [
    ['page', '/pricing', 'next'],
    ['page', '/', 'previous'],
    ['event_type', 'click', 'next'],
  ] as const) {
    const q: RefPathsQuestion = {
      from,
      to,
      bots: 'exclude',
      filters: [],
      by,
      anchor,
      direction,
      depth: 3,
      limit: 5,
    };
    const qs = new URLSearchParams({ ...range, by, anchor, direction, depth: '3', limit: '5' });
    const res = await getJson<{
      anchors: number;
      levels: { depth: number; items: { path: unknown[]; count: number }[]; other: number }[];
    }>(`${url}/v1/stats/paths?${qs.toString()}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const want = product.paths(q);
    assert.ok(want.anchors > 0, `paths ${qs.toString()} meet the anchor`);
    assert.deepEqual(
      {
        anchors: res.body.anchors,
        levels: res.body.levels.map((l) => ({
          depth: l.depth,
          items: l.items.map((i) => ({ path: i.path, count: i.count })),
          other: l.other,
        })),
      },
      want,
      `paths ${qs.toString()}`,
    );
  }
}

const byTuple = (a: unknown[], b: unknown[]) => compareC(JSON.stringify(a), JSON.stringify(b));

const escapeValue = (v: string) => v.replaceAll('\\', '\\\\').replaceAll('|', '\\|');

/** The query string of a question (plus `extra` parameters), in the API's filter syntax. */
export function queryString(q: Question, extra: Record<string, string> = {}): string {
  const p = new URLSearchParams({
    from: new Date(q.from).toISOString(),
    to: new Date(q.to).toISOString(),
    ...extra,
  });
  if (q.bots !== 'exclude') p.set('bots', q.bots);
  for (const f of q.filters) p.append('filter', `${f.dim}${f.op}${f.values.map(escapeValue).join('|')}`);
  return p.toString();
}

export function question(
  from: number,
  to: number,
  filters: RefFilter[] = [],
  bots: Bots = 'exclude',
): Question {
  return { from, to, filters, bots };
}

/** Asserts Tally's /v1/stats/summary for `q` equals the oracle's. */
export async function assertSummary(
  url: string,
  oracle: WebOracle,
  q: Question,
  what: string,
): Promise<void> {
  const res = await getJson<Record<string, unknown>>(`${url}/v1/stats/summary?${queryString(q)}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const want = oracle.summary(q);
  const got = Object.fromEntries(Object.keys(want).map((k) => [k, res.body[k]]));
  assert.deepEqual(got, want, `summary ${what}: ${queryString(q)}`);
}

/** Asserts Tally's /v1/stats/breakdown of `dimension` for `q` (every row) equals the oracle's. */
export async function assertBreakdown(
  url: string,
  oracle: WebOracle,
  q: Question,
  dimension: string,
  metrics: readonly string[] = BREAKDOWN_METRICS,
): Promise<void> {
  const qs = queryString(q, { dimension, metrics: metrics.join(','), limit: '1000' });
  const res = await getJson<Record<string, unknown>>(`${url}/v1/stats/breakdown?${qs}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body, oracle.breakdown(q, dimension, metrics), `breakdown ${qs}`);
}

interface Queryable {
  query<R extends object>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** tally.sessions holds exactly the oracle's visits (bots too): the count, then every column. */
export async function assertSessions(db: Queryable, oracle: WebOracle, project = 'default'): Promise<void> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM tally.sessions WHERE project = $1',
    [project],
  );
  assert.equal(rows[0].n, oracle.visits.length, 'SELECT count(*) FROM tally.sessions');
  const stored = await storedVisits(db, project);
  assert.deepEqual(stored, oracle.visits, 'every column of tally.sessions');
}

export interface Sent {
  requests: number;
  accepted: number;
  duplicates: number;
}

/**
 * POSTs `bodies` to /v1/events in requests of random sizes (1..`maxBatch`), as JSON arrays or
 * NDJSON, `concurrency` at a time, with `headers` (an API key); every request must be answered 202
 * without rejections.
 */
export async function sendEvents(
  baseUrls: readonly string[],
  bodies: readonly Record<string, unknown>[],
  random: () => number,
  options: { maxBatch: number; concurrency: number; headers?: Record<string, string> },
): Promise<Sent> {
  const batches: Record<string, unknown>[][] = [];
  for (let i = 0; i < bodies.length;) {
    const size = random() < 0.3 ? 1 : 1 + Math.floor(random() * options.maxBatch);
    batches.push(bodies.slice(i, i + size));
    i += size;
  }
  const sent: Sent = { requests: 0, accepted: 0, duplicates: 0 };
  await pool(
    batches.map((batch, i) => async () => {
      const ndjson = random() < 0.3;
      const res = await fetch(`${baseUrls[i % baseUrls.length]}/v1/events`, {
        method: 'POST',
        headers: { ...options.headers, 'content-type': ndjson ? 'application/x-ndjson' : 'application/json' },
        body: ndjson ? batch.map((b) => JSON.stringify(b)).join('\n') : JSON.stringify(batch),
      });
      const json = (await res.json()) as { accepted: number; duplicates?: number; rejected?: unknown };
      assert.equal(res.status, 202, JSON.stringify(json).slice(0, 300));
      assert.equal(json.rejected, undefined, JSON.stringify(json.rejected));
      sent.requests++;
      sent.accepted += json.accepted;
      sent.duplicates += json.duplicates ?? 0;
    }),
    options.concurrency,
  );
  return sent;
}

/** Sends each event as a browser beacon: text/plain to /v1/collect, the user agent in the header only. */
export async function sendBeacons(baseUrl: string, beacons: readonly Generated[], concurrency: number) {
  await pool(
    beacons.map((g) => async () => {
      assert.equal(g.body.user_agent, undefined);
      const res = await fetch(`${baseUrl}/v1/collect`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain;charset=UTF-8', 'user-agent': g.collectUserAgent ?? '' },
        body: JSON.stringify(g.body),
      });
      assert.equal(res.status, 202, await res.text());
    }),
    concurrency,
  );
}
