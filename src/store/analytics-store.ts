import type { QueryResultRow } from 'pg';
import type { Queryable } from './read-snapshot.ts';
import type { Dimension, Filter } from '../query/filters.ts';
import { NONE_VALUE } from '../query/filters.ts';

export type Bots = 'exclude' | 'include' | 'only';

/** What a scan reads: one project's events (or visits) in [from, to), under filters. */
export interface Scope {
  project: string;
  from: number;
  to: number;
  filters: readonly Filter[];
  bots: Bots;
}

/**
 * How rows are grouped: not at all (totals), by a filter dimension (a breakdown), by time bucket
 * (`starts`: ascending bucket starts, epoch ms; the key is the 0-based bucket index), or by a
 * raw column (top pages, event types).
 */
export type Grouping =
  | { kind: 'none' }
  | { kind: 'dimension'; dimension: Dimension }
  | { kind: 'buckets'; starts: readonly number[] }
  | { kind: 'column'; column: 'page_url' | 'type' };

export type GroupKey = string | number | null;

export interface EventGroup {
  key: GroupKey;
  visitors: number;
  events: number;
  page_views: number;
}

export interface VisitGroup {
  key: GroupKey;
  visits: number;
  bounces: number;
  /** Sum of the visits' durations (ended_at − started_at), ms. */
  duration_ms: number;
  /** Sum of the visits' page views (all of them, not only the selected events'). */
  page_views: number;
  /** Median duration, ms (grouping 'none' only; null without visits). */
  median_ms: number | null;
}

// The whitelist: the only column names that ever reach SQL text. Filter values never do.
const EVENT_COLUMNS: Record<string, string> = {
  page: 'path',
  hostname: 'hostname',
  event_type: 'type',
  browser: 'browser',
  os: 'os',
  device: 'device',
  country: 'country',
};
const VISIT_COLUMNS: Record<string, string> = {
  entry_page: 'entry_page',
  exit_page: 'exit_page',
  referrer: 'referrer_host',
  channel: 'channel',
  utm_source: 'utm_source',
  utm_medium: 'utm_medium',
  utm_campaign: 'utm_campaign',
  utm_term: 'utm_term',
  utm_content: 'utm_content',
};

const PAGE_VIEW = 'page_view';
/** Per hash table or sort of a scan; see #query. */

/** Collects bind parameters; `add` returns the placeholder. */
class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    return `$${this.values.push(value)}`;
  }
}

/** The SQL expression of a dimension, on `e` (tally.events) or `s` (tally.sessions). */
function dimensionSql(d: Dimension, params: Params): string {
  switch (d.kind) {
    case 'event':
      return `e.${EVENT_COLUMNS[d.name]}`;
    case 'visit':
      return `s.${VISIT_COLUMNS[d.name]}`;
    case 'property':
      return `(e.properties ->> ${params.add(d.key)}::text)`;
  }
}

/**
 * One filter as a predicate. Each filter's alternatives travel as one text[] parameter.
 * TRICKY: a NULL column never equals nor contains anything, so `!=` and `!~` keep rows without
 * a value (they are "none of"), and `==(none)` / `!=(none)` test for NULL itself.
 * Contains is `strpos(lower(col), lower(value))`: case-insensitive, and no LIKE pattern, so
 * `%`, `_` and `\` in a value are plain characters with nothing to escape.
 */
function filterSql(f: Filter, params: Params): string {
  const col = dimensionSql(f.dimension, params);
  if (f.op === 'contains' || f.op === 'not_contains') {
    const any = `EXISTS (SELECT FROM unnest(${params.add(f.values)}::text[]) AS v(x) WHERE strpos(lower(${col}), lower(v.x)) > 0)`;
    return f.op === 'contains' ? any : `NOT ${any}`;
  }
  const values = f.values.filter((v) => v !== NONE_VALUE);
  // The plain "is one of": a strict predicate (NULL is not true), which lets the planner turn the
  // events' LEFT JOIN to their visits into an inner one and read the matching visits first.
  if (f.op === 'is' && values.length === f.values.length)
    return `${col} = ANY(${params.add(values)}::text[])`;
  const parts: string[] = [];
  if (values.length > 0) parts.push(`coalesce(${col} = ANY(${params.add(values)}::text[]), false)`);
  if (values.length < f.values.length) parts.push(`${col} IS NULL`);
  const is = `(${parts.join(' OR ')})`;
  return f.op === 'is' ? is : `NOT ${is}`;
}

function botsSql(bots: Bots, alias: 'e' | 's'): string[] {
  if (bots === 'include') return [];
  return [bots === 'only' ? `${alias}.is_bot` : `NOT ${alias}.is_bot`];
}

const isVisitLevel = (f: Filter) => f.dimension.kind === 'visit';

// An event's visit: the one of its user and session key whose span holds the event's time.
const EVENT_IN_VISIT = `e.project = s.project AND e.user_id = s.user_id
  AND coalesce(e.session_id, '') = s.session_key AND e.ts >= s.started_at AND e.ts <= s.ended_at`;

/**
 * The scan engine for filtered questions (issue 20): reads tally.events and tally.sessions
 * directly, exact under any filter. Unfiltered questions without bots go to the rollups
 * (stats-store.ts) instead; see src/query/QUERY_PLANS.md for the plans.
 */
export class AnalyticsStore {
  readonly #pool: Queryable;

  constructor(pool: Queryable) {
    this.#pool = pool;
  }

  /**
   * Selected events, grouped: the events in range (bots per scope) that pass every filter,
   * event-level ones on the event, visit-level ones on the event's visit. `top` orders by count
   * and keeps the first rows (top pages, event types); `type` keeps only events of that type.
   */
  async eventGroups(
    scope: Scope,
    grouping: Grouping,
    opts: { type?: string; top?: number } = {},
  ): Promise<EventGroup[]> {
    const params = new Params();
    const where = [
      `e.project = ${params.add(scope.project)}`,
      `e.ts >= to_timestamp(${params.add(scope.from)}::float8 / 1000)`,
      `e.ts < to_timestamp(${params.add(scope.to)}::float8 / 1000)`,
      ...botsSql(scope.bots, 'e'),
    ];
    if (opts.type !== undefined) where.push(`e.type = ${params.add(opts.type)}`);
    for (const f of scope.filters) where.push(filterSql(f, params));
    // Top pages count the events that carry a page_url, like tally.rollup_pages.
    if (grouping.kind === 'column' && grouping.column === 'page_url') where.push('e.page_url IS NOT NULL');
    const key = this.#keySql(grouping, params, 'e');
    const needsVisit =
      scope.filters.some(isVisitLevel) ||
      (grouping.kind === 'dimension' && grouping.dimension.kind === 'visit');
    // One visit per event by construction (a user's visits of one key never overlap), so a join
    // (not a per-event probe) finds it: the planner hashes the visits, or reads the few that pass
    // a visit-level filter first and then their users' events. LEFT: an event without a visit row
    // still counts under "none of" filters and as "(none)"; strict filters make it an inner join.
    const visit = needsVisit ? `LEFT JOIN tally.sessions s ON ${EVENT_IN_VISIT}` : '';
    // Distinct users as a count of (key, user) groups rather than count(DISTINCT): a hash
    // aggregate that PostgreSQL can run in parallel, instead of one sort per group.
    let sql = `SELECT key, count(*)::int8 AS visitors, sum(n)::int8 AS events, sum(pv)::int8 AS page_views
      FROM (SELECT ${key} AS key, e.user_id, count(*) AS n, count(*) FILTER (WHERE e.type = '${PAGE_VIEW}') AS pv
        FROM tally.events e ${visit}
        WHERE ${where.join(' AND ')}
        GROUP BY 1, 2) g
      GROUP BY 1`;
    if (opts.top !== undefined) sql += ` ORDER BY events DESC, key LIMIT ${params.add(opts.top)}`;
    return this.#query<EventGroup>(sql, params.values);
  }

  /**
   * Visits started in range (bots per scope) that hold at least one selected event: visit-level
   * filters on the visit, event-level ones on any of its events in range. Grouped by an
   * event-level dimension, a visit counts once under each value its selected events have.
   */
  async visitGroups(scope: Scope, grouping: Grouping): Promise<VisitGroup[]> {
    const params = new Params();
    const from$ = params.add(scope.from);
    const to$ = params.add(scope.to);
    const where = [
      `s.project = ${params.add(scope.project)}`,
      `s.started_at >= to_timestamp(${from$}::float8 / 1000)`,
      `s.started_at < to_timestamp(${to$}::float8 / 1000)`,
      ...botsSql(scope.bots, 's'),
    ];
    // Selected events are in [from, to) too: a visit crossing `to` is not chosen by its later events.
    // (Its first event is in range, so without event filters every visit has one: no EXISTS.)
    const inRange = [
      `e.ts >= to_timestamp(${from$}::float8 / 1000)`,
      `e.ts < to_timestamp(${to$}::float8 / 1000)`,
    ];
    const eventFilters: string[] = [];
    for (const f of scope.filters) (isVisitLevel(f) ? where : eventFilters).push(filterSql(f, params));
    const byEvent =
      grouping.kind === 'dimension' && grouping.dimension.kind !== 'visit' ? grouping.dimension : undefined;
    let from = 'tally.sessions s';
    let key: string;
    if (byEvent !== undefined) {
      // One row per (visit, value of its selected events).
      from += ` CROSS JOIN LATERAL (SELECT DISTINCT ${dimensionSql(byEvent, params)} AS key
        FROM tally.events e WHERE ${[EVENT_IN_VISIT, ...inRange, ...eventFilters].join(' AND ')}) g`;
      key = 'g.key';
    } else {
      if (eventFilters.length > 0) {
        where.push(
          `EXISTS (SELECT FROM tally.events e WHERE ${[EVENT_IN_VISIT, ...inRange, ...eventFilters].join(' AND ')})`,
        );
      }
      key = this.#keySql(grouping, params, 's');
    }
    const duration = `(extract(epoch FROM s.ended_at) - extract(epoch FROM s.started_at)) * 1000`;
    const median =
      grouping.kind === 'none' ? `percentile_cont(0.5) WITHIN GROUP (ORDER BY ${duration})` : 'NULL::float8';
    return this.#query<VisitGroup>(
      `SELECT ${key} AS key, count(*)::int8 AS visits,
          count(*) FILTER (WHERE s.page_views = 1 AND s.events = 1)::int8 AS bounces,
          coalesce(sum(round(${duration})), 0)::int8 AS duration_ms,
          coalesce(sum(s.page_views), 0)::int8 AS page_views,
          ${median} AS median_ms
        FROM ${from}
        WHERE ${where.join(' AND ')}
        GROUP BY 1`,
      params.values,
    );
  }

  /**
   * One scan. Under a snapshot (src/store/read-snapshot.ts) it gets the memory its hash tables and
   * sorts need: at PostgreSQL's 4 MB default the summary's median sort of a month's visits spills
   * to disk (src/query/QUERY_PLANS.md).
   */
  async #query<R extends QueryResultRow>(sql: string, values: unknown[]): Promise<R[]> {
    return (await this.#pool.query<R>(sql, values)).rows;
  }

  #keySql(grouping: Grouping, params: Params, alias: 'e' | 's'): string {
    switch (grouping.kind) {
      case 'none':
        return 'NULL::text';
      case 'dimension':
        return dimensionSql(grouping.dimension, params);
      case 'buckets': {
        const t = alias === 'e' ? 'e.ts' : 's.started_at';
        return `width_bucket(extract(epoch FROM ${t})::float8 * 1000, ${params.add(grouping.starts)}::float8[]) - 1`;
      }
      case 'column':
        if (alias === 's') throw new Error('visits have no raw columns to group by');
        return `e.${grouping.column === 'page_url' ? 'page_url' : 'type'}`;
    }
  }
}
