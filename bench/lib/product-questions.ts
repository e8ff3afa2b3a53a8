/**
 * The questions of bench scenario 10 (issue 21, "Speed"): a funnel, a retention table and a
 * path query, each asked of Tally over REST and, as the baseline, as one straightforward SQL over
 * the raw events (and tally.sessions for the visits of the paths). Each SQL computes the same
 * numbers as the contract (CONTRACT-21) on this data set, so the answers are cross-checked
 * (bench/lib/product-check.ts). $1 and $2 are the range [from, to), $3… `sqlParams`.
 */
export type ProductKind = 'funnel' | 'retention' | 'paths';

export interface ProductQuestion {
  name: string;
  kind: ProductKind;
  method: 'GET' | 'POST';
  path: string;
  /** The request's fields but the range: the JSON body (POST) or the query string (GET). */
  params: Record<string, unknown>;
  sql: string;
  sqlParams: unknown[];
}

export const TARGET_PRODUCT_MS = 1000;

const HUMAN = `project = 'default' AND NOT is_bot`;
const IN_RANGE = `${HUMAN} AND ts >= $1 AND ts < $2`;

/**
 * Strict funnel of three steps per user, in the straightforward form: every start (a step-1
 * event) with its earliest step-2 event within the window, then the earliest step-3 event after
 * that one within the same window; a user reaches depth j when some start does. Exact here
 * because the three steps match disjoint events (at equal ts the contract's sequence puts a
 * step-1 event before a step-2 one before a step-3 one, as `>=` lets them chain) and the earliest
 * match is never worse. $6 is the window in ms: an interval in days would follow the session's
 * time zone across DST.
 */
const WINDOW_SPAN = `$6::float8 * interval '1 millisecond'`;

export const FUNNEL_SQL = `
WITH s1 AS (SELECT user_id, ts FROM tally.events WHERE ${IN_RANGE} AND type = 'page_view' AND path = $3),
     s2 AS (SELECT user_id, ts FROM tally.events WHERE ${IN_RANGE} AND type = 'page_view' AND path = $4),
     s3 AS (SELECT user_id, ts FROM tally.events WHERE ${IN_RANGE} AND type = $5),
     c2 AS (
       SELECT s1.user_id, s1.ts AS t1, min(s2.ts) AS t2
         FROM s1 LEFT JOIN s2 ON s2.user_id = s1.user_id AND s2.ts >= s1.ts AND s2.ts <= s1.ts + ${WINDOW_SPAN}
        GROUP BY 1, 2
     ),
     c3 AS (
       SELECT c2.user_id, c2.t2, min(s3.ts) AS t3
         FROM c2 LEFT JOIN s3 ON s3.user_id = c2.user_id AND s3.ts >= c2.t2 AND s3.ts <= c2.t1 + ${WINDOW_SPAN}
        GROUP BY c2.user_id, c2.t1, c2.t2
     )
SELECT count(DISTINCT user_id)::int AS step1,
       count(DISTINCT user_id) FILTER (WHERE t2 IS NOT NULL)::int AS step2,
       count(DISTINCT user_id) FILTER (WHERE t3 IS NOT NULL)::int AS step3
  FROM c3`;

/**
 * Weekly retention by first seen (UTC, Monday weeks): a user's first human event ever (before
 * the range's end) puts it in its week's cohort when it lies in the range; row (start, k) counts
 * the cohort's users with an event in week k (k = 0: the cohort's size), events before the end only.
 */
export const RETENTION_SQL = `
WITH firsts AS (
       SELECT user_id, min(ts) AS first FROM tally.events WHERE ${HUMAN} AND ts < $2 GROUP BY user_id
     ),
     cohorts AS (
       SELECT user_id, date_trunc('week', first AT TIME ZONE 'UTC') AS week FROM firsts WHERE first >= $1
     ),
     back AS (
       SELECT c.week, c.user_id, (date_trunc('week', e.ts AT TIME ZONE 'UTC')::date - c.week::date) / 7 AS k
         FROM cohorts c
         JOIN tally.events e ON e.project = 'default' AND e.user_id = c.user_id AND NOT e.is_bot AND e.ts < $2
     )
SELECT week AT TIME ZONE 'UTC' AS start, k, count(DISTINCT user_id)::int AS users
  FROM back WHERE k < $3 GROUP BY week, k ORDER BY week, k`;

/** How an event belongs to its visit (src/store/analytics-store.ts, EVENT_IN_VISIT). */
const EVENT_IN_VISIT = `e.project = s.project AND e.user_id = s.user_id
  AND coalesce(e.session_id, '') = s.session_key AND e.ts >= s.started_at AND e.ts <= s.ended_at`;

/**
 * Next pages after an anchor page, within the visit: each visit's page events in order (ts, then
 * path as bytes, the contract's tie), the three next paths by lead() (NULL past the visit's last),
 * counted per depth by grouping sets and ranked (count desc, then the path, NULL last). Depth 0
 * is the anchors' count. $3 the anchor, $4 the items per depth.
 */
export const PATHS_SQL = `
WITH visit_events AS (
       SELECT e.path,
              lead(e.path, 1) OVER w AS n1, lead(e.path, 2) OVER w AS n2, lead(e.path, 3) OVER w AS n3
         FROM tally.events e JOIN tally.sessions s ON ${EVENT_IN_VISIT}
        WHERE e.project = 'default' AND NOT e.is_bot AND e.ts >= $1 AND e.ts < $2 AND e.path IS NOT NULL
       WINDOW w AS (PARTITION BY s.user_id, s.session_key, s.started_at ORDER BY e.ts, e.path COLLATE "C")
     ),
     counted AS (
       SELECT n1, n2, n3, grouping(n1, n2, n3) AS g, count(*)::int AS count
         FROM visit_events WHERE path = $3
        GROUP BY GROUPING SETS ((), (n1), (n1, n2), (n1, n2, n3))
     ),
     ranked AS (
       SELECT n1, n2, n3, count, CASE g WHEN 7 THEN 0 WHEN 3 THEN 1 WHEN 1 THEN 2 ELSE 3 END AS depth,
              row_number() OVER (PARTITION BY g ORDER BY count DESC, n1 COLLATE "C", n2 COLLATE "C", n3 COLLATE "C") AS rank
         FROM counted
     )
SELECT depth, n1, n2, n3, count FROM ranked WHERE rank <= $4 ORDER BY depth, rank`;

export function productQuestions(days: number): ProductQuestion[] {
  return [
    {
      name: `funnel: page_view / → page_view /pricing → signup, 7-day window, per user, strict, ${days} days`,
      kind: 'funnel',
      method: 'POST',
      path: '/v1/stats/funnel',
      params: {
        steps: [
          { event_type: 'page_view', page: '/' },
          { event_type: 'page_view', page: '/pricing' },
          { event_type: 'signup' },
        ],
        window: '7d',
        count_by: 'user',
        order: 'strict',
      },
      sql: FUNNEL_SQL,
      sqlParams: ['/', '/pricing', 'signup', 7 * 86_400_000],
    },
    {
      name: `retention: weekly, 8 periods, UTC, first seen, any return, ${days} days`,
      kind: 'retention',
      method: 'GET',
      path: '/v1/stats/retention',
      params: { period: 'week', periods: 8, tz: 'UTC' },
      sql: RETENTION_SQL,
      sqlParams: [8],
    },
    {
      name: `paths: next pages after /, depth 3, top 10, ${days} days`,
      kind: 'paths',
      method: 'GET',
      path: '/v1/stats/paths',
      params: { by: 'page', anchor: '/', direction: 'next', depth: 3, limit: 10 },
      sql: PATHS_SQL,
      sqlParams: ['/', 10],
    },
  ];
}

/** The request of `q` over [from, to): its URL path (with the query string) and fetch options. */
export function productRequest(
  q: ProductQuestion,
  from: number,
  to: number,
): { url: string; init: RequestInit } {
  const range = { from: new Date(from).toISOString(), to: new Date(to).toISOString() };
  if (q.method === 'POST') {
    return {
      url: q.path,
      init: {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...q.params, ...range }),
      },
    };
  }
  const search = new URLSearchParams(range);
  for (const [k, v] of Object.entries(q.params)) search.set(k, String(v));
  return { url: `${q.path}?${search.toString()}`, init: {} };
}
