/**
 * The questions of the `analytics` bench scenario (issue 20, "Speed"): each asked of Tally over
 * REST (CONTRACT-20's filter syntax) and, as the baseline, as one straightforward SQL over the
 * raw events the way Umami answers it on PostgreSQL: `count(DISTINCT user_id) … WHERE … GROUP BY`
 * on the event's own columns, bots left out. Visits in the summary's baseline are cut from the
 * raw rows with window functions (a gap > 30 min starts one), as a raw-events system must.
 *
 * TRICKY: for the visit-level dimensions (channel, referrer, utm_*) Tally answers by the visit's
 * value (CONTRACT-20), the Umami-style baseline by the event's own: same work, different numbers.
 * So answers are cross-checked only where both mean the same (`check`).
 */
export type Check =
  /** summary.visitors equals the baseline's visitors. */
  | { kind: 'summary-visitors' }
  /** The breakdown's rows (value, visitors, page_views) equal the baseline's top rows. */
  | { kind: 'rows' }
  /** The breakdown's total.visitors equals this SQL's count (event-level filters only). */
  | { kind: 'total-visitors'; sql: string };

export interface AnalyticsQuestion {
  name: string;
  /** Unfiltered questions: p99 ≤ 150 ms; filtered ones ≤ 500 ms (issue 20). */
  filtered: boolean;
  path: string;
  params: Record<string, string>;
  /** CONTRACT-20 filters, one `filter` query parameter each. */
  filters: string[];
  /** Baseline; $1 and $2 are the range [from, to), $3… `sqlParams`. */
  sql: string;
  sqlParams: unknown[];
  check?: Check;
}

export const TARGET_UNFILTERED_MS = 150;
export const TARGET_FILTERED_MS = 500;

const IN_RANGE = `project = 'default' AND ts >= $1 AND ts < $2 AND NOT is_bot`;

const SUMMARY_SQL = `
WITH e AS (
  SELECT user_id, ts, type,
         CASE WHEN ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts) <= interval '30 minutes' THEN 0 ELSE 1 END AS starts
    FROM tally.events WHERE ${IN_RANGE}
), v AS (
  SELECT user_id, type, sum(starts) OVER (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS visit FROM e
), s AS (
  SELECT user_id, visit, count(*) AS events, count(*) FILTER (WHERE type = 'page_view') AS page_views
    FROM v GROUP BY user_id, visit
)
SELECT count(DISTINCT user_id)::int AS visitors, count(*)::int AS visits,
       round(100.0 * count(*) FILTER (WHERE events = 1 AND page_views = 1) / nullif(count(*), 0), 1)::float8 AS bounce_rate
  FROM s`;

/** `column` compared with each condition's parameter, numbered from $3. */
function breakdownSql(column: string, where: string[] = []): string {
  return `SELECT coalesce(${column}, '(none)') AS value, count(DISTINCT user_id)::int AS visitors,
                 count(*) FILTER (WHERE type = 'page_view')::int AS page_views
            FROM tally.events WHERE ${[IN_RANGE, ...where].join(' AND ')}
           GROUP BY 1 ORDER BY visitors DESC, coalesce(${column}, '(none)') COLLATE "C" LIMIT 10`;
}

function visitorsSql(where: string[]): string {
  return `SELECT count(DISTINCT user_id)::int AS visitors FROM tally.events WHERE ${[IN_RANGE, ...where].join(' AND ')}`;
}

const breakdown = (dimension: string) => ({
  path: '/v1/stats/breakdown',
  params: { dimension, metrics: 'visitors,page_views', limit: '10' },
});

export function analyticsQuestions(days: number): AnalyticsQuestion[] {
  const usChrome = ['country = $3', 'browser = $4'];
  const blogDeDesktop = ['strpos(lower(path), $3) > 0', 'country = $4', 'device = $5'];
  return [
    {
      name: `summary: visitors, visits, bounce rate, ${days} days`,
      filtered: false,
      path: '/v1/stats/summary',
      params: {},
      filters: [],
      sql: SUMMARY_SQL,
      sqlParams: [],
      check: { kind: 'summary-visitors' },
    },
    ...(
      [
        ['country', 'country'],
        ['page', 'path'],
        ['channel', 'channel'],
        ['browser', 'browser'],
      ] as const
    ).map(([dimension, column]): AnalyticsQuestion => ({
      name: `breakdown by ${dimension}, visitors + page views, no filter`,
      filtered: false,
      ...breakdown(dimension),
      filters: [],
      sql: breakdownSql(column),
      sqlParams: [],
      // channel is visit-level in Tally, event-level in the baseline (see the top).
      check: dimension === 'channel' ? undefined : { kind: 'rows' },
    })),
    {
      name: 'breakdown by page, channel==Email & device==mobile',
      filtered: true,
      ...breakdown('page'),
      filters: ['channel==Email', 'device==mobile'],
      sql: breakdownSql('path', ['channel = $3', 'device = $4']),
      sqlParams: ['Email', 'mobile'],
    },
    {
      name: 'breakdown by referrer, country==US & browser==Chrome',
      filtered: true,
      ...breakdown('referrer'),
      filters: ['country==US', 'browser==Chrome'],
      sql: breakdownSql('referrer_host', usChrome),
      sqlParams: ['US', 'Chrome'],
      check: { kind: 'total-visitors', sql: visitorsSql(usChrome) },
    },
    {
      name: 'breakdown by referrer, page~=/blog & country==DE & device==desktop',
      filtered: true,
      ...breakdown('referrer'),
      filters: ['page~=/blog', 'country==DE', 'device==desktop'],
      sql: breakdownSql('referrer_host', blogDeDesktop),
      sqlParams: ['/blog', 'DE', 'desktop'],
      check: { kind: 'total-visitors', sql: visitorsSql(blogDeDesktop) },
    },
    {
      name: 'timeseries visitors per day, utm_source==newsletter',
      filtered: true,
      path: '/v1/stats/timeseries',
      params: { metric: 'unique_users', interval: 'day' },
      filters: ['utm_source==newsletter'],
      sql: `SELECT date_trunc('day', ts AT TIME ZONE 'UTC') AS day, count(DISTINCT user_id)::int AS visitors
              FROM tally.events WHERE ${IN_RANGE} AND utm_source = $3 GROUP BY 1 ORDER BY 1`,
      sqlParams: ['newsletter'],
    },
  ];
}

/** The request path and query string of `q` over [from, to). */
export function questionUrl(q: AnalyticsQuestion, from: number, to: number): string {
  const search = new URLSearchParams({
    ...q.params,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
  });
  for (const f of q.filters) search.append('filter', f);
  return `${q.path}?${search.toString()}`;
}
