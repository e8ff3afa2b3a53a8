import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { getJson, startTestTally } from '../helpers/embedded-tally.ts';
import { sessionize, storeWebEvents, type WebEvent } from './web-fixtures.ts';
import {
  Reference,
  refMetric,
  refSummary,
  type Bots,
  type Question,
  type RefFilter,
} from './web-reference.ts';

/**
 * Exactness of /v1/stats/breakdown and /v1/stats/summary under any filter: random events (users,
 * bots, visits with and without session ids, every dimension) are stored raw with their visits,
 * then random questions are compared with a from-scratch computation over the same events
 * (web-reference.ts). Each run has its own 8-day window, so earlier runs and cached answers
 * never meet a later run's questions.
 */

const MINUTE = 60_000;
const DAY = 86_400_000;
// Far enough back that a long shrink (a window per run) never reaches the present.
const START = Date.UTC(2012, 2, 1);
const TIMEOUT = 30 * MINUTE;

const DOMAIN = {
  type: ['page_view', 'page_view', 'page_view', 'click', 'signup'],
  path: ['/', '/pricing', '/blog/a', '/Blog/B', "/it's%_x", null],
  hostname: ['example.com', 'shop.example.com'],
  referrer_host: [null, 'google.com', 'news.ycombinator.com'],
  channel: ['Direct', 'Email', 'Organic Search', 'Referral', null],
  utm_source: [null, 'newsletter', 'Twitter'],
  browser: ['Chrome', 'Firefox', 'Safari', null],
  os: ['Windows', 'iOS', 'Android'],
  device: ['desktop', 'mobile', 'tablet', null],
  country: ['FR', 'US', 'DE', null],
  plan: [null, 'pro', 'free'],
  session: [null, null, null, 's1', 's2'],
} as const;

const pickOf = <T>(list: readonly T[]) => fc.nat(list.length - 1).map((i) => list[i]);

const rawEvent = fc.record({
  user: fc.nat(7),
  bot: fc.nat(9).map((n) => n === 0),
  anchor: fc.nat(4),
  offset: fc.nat(50 * MINUTE),
  type: pickOf(DOMAIN.type),
  path: pickOf(DOMAIN.path),
  hostname: pickOf(DOMAIN.hostname),
  referrer_host: pickOf(DOMAIN.referrer_host),
  channel: pickOf(DOMAIN.channel),
  utm_source: pickOf(DOMAIN.utm_source),
  browser: pickOf(DOMAIN.browser),
  os: pickOf(DOMAIN.os),
  device: pickOf(DOMAIN.device),
  country: pickOf(DOMAIN.country),
  plan: pickOf(DOMAIN.plan),
  session: pickOf(DOMAIN.session),
});

const DIMENSIONS = [
  'page',
  'hostname',
  'entry_page',
  'exit_page',
  'referrer',
  'channel',
  'utm_source',
  'utm_medium',
  'browser',
  'os',
  'device',
  'country',
  'event_type',
  'property:plan',
];
const own = (list: readonly (string | null)[]) => [...new Set(list.filter((v): v is string => v !== null))];
/** Each dimension's own values, so that most generated filters select something. */
const DIM_VALUES: Record<string, string[]> = {
  page: own(DOMAIN.path),
  entry_page: own(DOMAIN.path),
  exit_page: own(DOMAIN.path),
  hostname: own(DOMAIN.hostname),
  referrer: own(DOMAIN.referrer_host),
  channel: own(DOMAIN.channel),
  utm_source: own(DOMAIN.utm_source),
  utm_medium: ['email'],
  browser: own(DOMAIN.browser),
  os: own(DOMAIN.os),
  device: own(DOMAIN.device),
  country: own(DOMAIN.country),
  event_type: own(DOMAIN.type),
  'property:plan': own(DOMAIN.plan),
};
const ANY_VALUE = [...new Set(Object.values(DIM_VALUES).flat()), 'nothing-has-this'];
const valueFor = (dim: string) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...DIM_VALUES[dim]) },
    { weight: 1, arbitrary: fc.constantFrom(...ANY_VALUE, '(none)') },
  );
const filterArb: fc.Arbitrary<RefFilter> = fc.constantFrom(...DIMENSIONS).chain((dim) =>
  fc.record({
    dim: fc.constant(dim),
    op: fc.constantFrom('==', '!=', '~=', '!~'),
    values: fc.array(
      fc.oneof(
        valueFor(dim),
        // Substrings in either case, for contains.
        valueFor(dim).chain((v) =>
          fc
            .tuple(fc.nat(v.length - 1), fc.nat(3), fc.boolean())
            .map(([i, n, up]) => (up ? v.slice(i, i + 1 + n).toUpperCase() : v.slice(i, i + 1 + n))),
        ),
      ),
      { minLength: 1, maxLength: 3 },
    ),
  }),
);
const METRICS = [
  'visitors',
  'visits',
  'page_views',
  'events',
  'bounce_rate',
  'visit_duration',
  'views_per_visit',
];
const questionArb = fc.record({
  fromMin: fc.nat(12 * 60),
  spanMin: fc.integer({ min: 6 * 60, max: 3 * 24 * 60 }),
  // Often `to` falls inside an anchor's hour, so visits cross it with selected-looking events after it.
  cut: fc.option(fc.tuple(fc.integer({ min: 2, max: 4 }), fc.nat(50)), { freq: 2 }),
  filters: fc.array(filterArb, { maxLength: 3 }),
  bots: fc.constantFrom<Bots>('exclude', 'exclude', 'include', 'only'),
  dimension: fc.constantFrom(...DIMENSIONS),
  metrics: fc.shuffledSubarray(METRICS, { minLength: 1, maxLength: 4 }),
  sort: fc.option(fc.tuple(fc.constantFrom(...METRICS), fc.constantFrom('asc', 'desc'))),
  limit: fc.integer({ min: 1, max: 6 }),
  seriesMetric: fc.constantFrom('events', 'page_views', 'unique_users', 'visitors', 'visits'),
  interval: fc.constantFrom('hour', 'day'),
  page: fc.oneof(
    { weight: 3, arbitrary: fc.constant(1) },
    { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) },
  ),
});

const escape = (v: string) => v.replaceAll('\\', '\\\\').replaceAll('|', '\\|');
const filterText = (f: RefFilter) => `${f.dim}${f.op}${f.values.map(escape).join('|')}`;

function params(q: Question, extra: Record<string, string>): string {
  const p = new URLSearchParams({
    from: new Date(q.from).toISOString(),
    to: new Date(q.to).toISOString(),
    ...extra,
  });
  if (q.bots !== 'exclude' || Math.random() < 0.5) p.set('bots', q.bots);
  for (const f of q.filters) p.append('filter', filterText(f));
  return p.toString();
}

// Both engines: the columnar read model (the default), and PostgreSQL's scan engine alone.
for (const readModel of ['columnar', 'off'] as const) {
  test(`breakdown and summary equal a from-scratch computation under random filters (TALLY_READ_MODEL=${readModel})`, async (t) => {
    const tally = await startTestTally(t, { TALLY_READ_MODEL: readModel });
    const pool = tally.database.pool;
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(rawEvent, { minLength: 1, maxLength: 80, size: 'max' }),
        questionArb,
        async (raws, qa) => {
          const base = START + run * 8 * DAY;
          const events: WebEvent[] = raws.map((r, i) => ({
            event_id: `r${run}-e${i}`,
            user_id: r.bot ? `r${run}-bot` : `r${run}-u${r.user}`,
            type: r.type,
            ts: base + r.anchor * 11 * 3_600_000 + r.offset,
            session_id: r.session,
            properties: r.plan === null ? null : { plan: r.plan },
            path: r.path,
            hostname: r.path === null ? null : r.hostname,
            referrer_host: r.referrer_host,
            channel: r.channel,
            utm_source: r.utm_source,
            utm_medium: r.utm_source === null ? null : 'email',
            utm_campaign: null,
            utm_term: null,
            utm_content: null,
            browser: r.browser,
            os: r.os,
            device: r.device,
            country: r.country,
            is_bot: r.bot,
          }));
          run++;
          const visits = sessionize(events, TIMEOUT);
          await storeWebEvents(tally.url, pool, events, visits);
          const ref = new Reference(events, visits);
          const from = base + qa.fromMin * MINUTE;
          const to =
            qa.cut === null
              ? from + qa.spanMin * MINUTE
              : base + qa.cut[0] * 11 * 3_600_000 + qa.cut[1] * MINUTE;
          const q: Question = { from, to, filters: qa.filters, bots: qa.bots };

          // Summary: filtered as generated, and unfiltered without bots (the rollup path).
          for (const question of [q, { ...q, filters: [], bots: 'exclude' as const }]) {
            const res = await getJson(`${tally.url}/v1/stats/summary?${params(question, {})}`);
            assert.equal(res.status, 200, JSON.stringify(res.body));
            const want = {
              from: new Date(question.from).toISOString(),
              to: new Date(question.to).toISOString(),
              ...refSummary(ref.totals(question)),
            };
            assert.deepEqual(res.body, want, `summary ${params(question, {})}`);
          }

          // Timeseries, top pages and event types under the same selection.
          const series = await getJson<{ points: { value: number }[] }>(
            `${tally.url}/v1/stats/timeseries?${params(q, { metric: qa.seriesMetric, interval: qa.interval })}`,
          );
          assert.equal(series.status, 200, JSON.stringify(series.body));
          assert.deepEqual(
            series.body.points.map((p) => p.value),
            expectedSeries(ref, q, qa.seriesMetric, qa.interval),
            `timeseries ${qa.seriesMetric} ${params(q, {})}`,
          );
          const top = await getJson(
            `${tally.url}/v1/stats/top-pages?${params(q, { limit: String(qa.limit) })}`,
          );
          assert.deepEqual(
            top.body.pages,
            expectedTop(ref, q, 'page_url', qa.limit),
            `top-pages ${params(q, {})}`,
          );
          const types = await getJson(
            `${tally.url}/v1/stats/event-types?${params(q, { limit: String(qa.limit) })}`,
          );
          assert.deepEqual(
            types.body.types,
            expectedTop(ref, q, 'type', qa.limit),
            `event-types ${params(q, {})}`,
          );

          // Breakdown.
          const extra: Record<string, string> = {
            dimension: qa.dimension,
            metrics: qa.metrics.join(','),
            limit: String(qa.limit),
            page: String(qa.page),
          };
          if (qa.sort !== null) extra.sort = `${qa.sort[0]}:${qa.sort[1]}`;
          const url = `${tally.url}/v1/stats/breakdown?${params(q, extra)}`;
          const res = await getJson(url);
          assert.equal(res.status, 200, JSON.stringify(res.body));
          assert.deepEqual(res.body, expectedBreakdown(ref, q, qa), url);
        },
      ),
      { numRuns: 30 },
    );
    const answered = await tally.metrics.registry.getSingleMetricAsString('tally_read_model_answers_total');
    if (readModel === 'columnar') assert.match(answered, /source="model"} [1-9]/, 'the model answered');
    else assert.doesNotMatch(answered, /source="model"} [1-9]/, 'PostgreSQL answered');
  });
}

function expectedBreakdown(
  ref: Reference,
  q: Question,
  qa: { dimension: string; metrics: string[]; sort: [string, string] | null; limit: number; page: number },
) {
  const [sortMetric, dir] = qa.sort ?? [qa.metrics[0], 'desc'];
  const visitMetrics = ['visits', 'bounce_rate', 'visit_duration', 'views_per_visit'];
  const wanted = [...qa.metrics, sortMetric];
  const needEvents = wanted.some((m) => !visitMetrics.includes(m));
  const needVisits = wanted.some((m) => visitMetrics.includes(m));
  const rows = [...ref.groups(q, qa.dimension)]
    .filter(([, c]) => (needEvents && c.events > 0) || (needVisits && c.visits.length > 0))
    .map(([key, c]) => ({ key, value: key ?? '(none)', c, s: refMetric(sortMetric, c) }));
  rows.sort((a, b) => {
    if (a.s !== b.s) {
      if (a.s === null) return 1;
      if (b.s === null) return -1;
      return dir === 'desc' ? b.s - a.s : a.s - b.s;
    }
    if (a.value !== b.value) return a.value < b.value ? -1 : 1;
    return (a.key === null ? 1 : 0) - (b.key === null ? 1 : 0);
  });
  const total = ref.totals(q);
  const base = qa.metrics.includes('visitors') ? 'visitors' : qa.metrics[0];
  const whole = refMetric(base, total);
  const metrics = (c: Parameters<typeof refMetric>[1]) =>
    Object.fromEntries(qa.metrics.map((m) => [m, refMetric(m, c)]));
  const offset = (qa.page - 1) * qa.limit;
  return {
    dimension: qa.dimension,
    from: new Date(q.from).toISOString(),
    to: new Date(q.to).toISOString(),
    metrics: qa.metrics,
    results: rows.slice(offset, offset + qa.limit).map((r) => {
      const part = refMetric(base, r.c);
      return {
        value: r.value,
        ...metrics(r.c),
        percentage:
          part === null || whole === null || whole === 0 ? null : Math.round((1000 * part) / whole) / 10,
      };
    }),
    total: metrics(total),
    page: qa.page,
    limit: qa.limit,
    has_more: rows.length > offset + qa.limit,
  };
}

function expectedSeries(ref: Reference, q: Question, metric: string, interval: string): number[] {
  const size = interval === 'hour' ? 3_600_000 : DAY;
  const values: number[] = [];
  // A visit counts in the bucket where it starts, chosen by its selected events anywhere in the
  // question's range (not only in that bucket): the series adds up to the summary's visits.
  const visits = ref.totals(q).visits;
  for (let start = Math.floor(q.from / size) * size; start < q.to; start += size) {
    const c = ref.totals({ ...q, from: Math.max(start, q.from), to: Math.min(start + size, q.to) });
    c.visits = visits.filter((v) => v.started_at >= start && v.started_at < start + size);
    const byMetric: Record<string, number> = {
      events: c.events,
      page_views: c.page_views,
      unique_users: c.visitors.size,
      visitors: c.visitors.size,
      visits: c.visits.length,
    };
    values.push(byMetric[metric]);
  }
  return values;
}

/** Top pages (page views by full URL) or event types (events by type): count desc, then name. */
function expectedTop(ref: Reference, q: Question, by: 'page_url' | 'type', limit: number) {
  const counts = new Map<string, number>();
  for (const e of ref.selectedEvents(q)) {
    if (by === 'page_url' && (e.type !== 'page_view' || e.path === null)) continue;
    const k = by === 'type' ? e.type : `https://${e.hostname ?? 'example.com'}${e.path}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const rows = [...counts].sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0)).slice(0, limit);
  return by === 'type'
    ? rows.map(([type, count]) => ({ type, count }))
    : rows.map(([page_url, views]) => ({ page_url, views }));
}
