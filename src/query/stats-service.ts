import { TallyError } from '../errors/tally-error.ts';
import { isDateOnly, parseDayStart, parseTimestamp } from '../event/timestamp.ts';
import { piecesFor, type Piece } from './range-pieces.ts';
import { PAGE_VIEW, type StatsStore } from '../store/stats-store.ts';
import { canonicalZone, estimateBuckets, isValidZone, zonedBuckets, type Interval } from './time-buckets.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;
const MAX_RANGE_MS = 3660 * DAY;
const MAX_POINTS = 20_000;

export type Metric = 'events' | 'page_views' | 'unique_users';
export type SeriesMetric = Metric | 'visitors' | 'visits';

export interface Range {
  from: number;
  to: number;
}

export interface RangeInput {
  from?: string | undefined;
  to?: string | undefined;
  /** The query's IANA zone, where a date-only `from`/`to` starts its day; default UTC. */
  tz?: string | undefined;
}

/**
 * Turns `from`/`to` query values into a minute-aligned [from, to) range (rollups are per
 * minute: `from` is floored, `to` is rounded up). Default: the last 24 hours. A date-only value
 * (`2026-12-01`) is that day's start in `tz`, so `from=2026-12-01&to=2026-12-02` is that one day.
 */
export function resolveRange(input: RangeInput, now = Date.now()): Range {
  const tz = canonicalZone(input.tz ?? 'UTC');
  if (tz === undefined)
    throw invalid('tz', `tz must be an IANA time zone name such as Europe/Paris (got ${input.tz})`);
  const to =
    input.to === undefined ? Math.ceil(now / MINUTE) * MINUTE : ceilMinute(readTime(input.to, 'to', tz));
  const from =
    input.from === undefined ? to - DAY : Math.floor(readTime(input.from, 'from', tz) / MINUTE) * MINUTE;
  if (from >= to) throw invalid('from', 'from must be earlier than to');
  if (to - from > MAX_RANGE_MS) throw invalid('from', 'range must be at most 3660 days');
  return { from, to };
}

function ceilMinute(t: number): number {
  return Math.ceil(t / MINUTE) * MINUTE;
}

function readTime(value: string, field: string, tz: string): number {
  if (isDateOnly(value)) {
    const t = parseDayStart(value, tz);
    if (t === undefined)
      throw invalid(field, `${field} must be a calendar date from 1970 to 9999 (got ${value})`);
    return t;
  }
  const t = /^\d+$/.test(value) ? parseTimestamp(Number(value)) : parseTimestamp(value);
  if (t === undefined)
    throw invalid(field, `${field} must be a date (YYYY-MM-DD), an ISO-8601 date-time or epoch milliseconds`);
  return t;
}

export function invalid(
  field: string,
  message: string,
  code: 'TALLY_INVALID_QUERY' | 'TALLY_UNSUPPORTED_FILTER' = 'TALLY_INVALID_QUERY',
) {
  return new TallyError(code, message, { details: [{ index: 0, field, code, message }] });
}

export function iso(t: number): string {
  return new Date(t).toISOString();
}

/** The timeseries buckets of a range, checked: a known zone, at most MAX_POINTS of them. */
export function bucketsFor(range: Range, interval: Interval, tz: string) {
  if (!isValidZone(tz))
    throw invalid('tz', `tz must be an IANA time zone name such as Europe/Paris (got ${tz})`);
  if (estimateBuckets(range.from, range.to, interval) > MAX_POINTS) {
    throw invalid(
      'interval',
      `range holds more than ${MAX_POINTS} ${interval} buckets: use a coarser interval`,
    );
  }
  return zonedBuckets(range.from, range.to, interval, tz);
}

/** The query model shared by REST and gRPC: every answer Tally gives about rollups. */
export class StatsService {
  readonly #store: StatsStore;

  constructor(store: StatsStore) {
    this.#store = store;
  }

  async summary(project: string, range: Range) {
    const pieces = piecesFor(range.from, range.to, 0);
    const [events, pageViews, users] = await Promise.all([
      this.#store.eventCounts(project, pieces, {}),
      this.#store.eventCounts(project, pieces, { type: PAGE_VIEW }),
      this.#store.uniqueUsers(project, pieces),
    ]);
    return {
      from: iso(range.from),
      to: iso(range.to),
      events: events.get(0) ?? 0,
      page_views: pageViews.get(0) ?? 0,
      unique_users: users.get(0) ?? 0,
    };
  }

  async timeseries(
    project: string,
    range: Range,
    q: {
      metric: Metric;
      interval: Interval;
      tz: string;
      eventType?: string | undefined;
      pageUrl?: string | undefined;
    },
  ) {
    const buckets = bucketsFor(range, q.interval, q.tz);
    const pieces: Piece[] = buckets.flatMap((b, i) => piecesFor(b.from, b.to, i));
    const values = await this.#metricValues(project, pieces, q);
    return {
      metric: q.metric,
      interval: q.interval,
      tz: q.tz,
      from: iso(range.from),
      to: iso(range.to),
      points: buckets.map((b, i) => ({ t: b.label, value: values.get(i) ?? 0 })),
    };
  }

  #metricValues(
    project: string,
    pieces: Piece[],
    q: { metric: Metric; eventType?: string | undefined; pageUrl?: string | undefined },
  ): Promise<Map<number, number>> {
    switch (q.metric) {
      case 'events':
        return q.pageUrl === undefined
          ? this.#store.eventCounts(project, pieces, { type: q.eventType })
          : this.#store.pageCounts(project, pieces, { type: q.eventType, pageUrl: q.pageUrl });
      case 'page_views':
        if (q.eventType !== undefined && q.eventType !== PAGE_VIEW) {
          throw invalid(
            'event_type',
            'event_type cannot be combined with metric=page_views',
            'TALLY_UNSUPPORTED_FILTER',
          );
        }
        return q.pageUrl === undefined
          ? this.#store.eventCounts(project, pieces, { type: PAGE_VIEW })
          : this.#store.pageCounts(project, pieces, { type: PAGE_VIEW, pageUrl: q.pageUrl });
      case 'unique_users':
        if (q.eventType !== undefined || q.pageUrl !== undefined) {
          const field = q.eventType !== undefined ? 'event_type' : 'page_url';
          throw invalid(
            field,
            `${field} filter is not supported for metric=unique_users`,
            'TALLY_UNSUPPORTED_FILTER',
          );
        }
        return this.#store.uniqueUsers(project, pieces);
    }
  }

  async topPages(project: string, range: Range, limit: number) {
    return {
      from: iso(range.from),
      to: iso(range.to),
      pages: await this.#store.topPages(project, piecesFor(range.from, range.to, 0), limit),
    };
  }

  async eventTypes(project: string, range: Range, limit: number) {
    return {
      from: iso(range.from),
      to: iso(range.to),
      types: await this.#store.eventTypes(project, piecesFor(range.from, range.to, 0), limit),
    };
  }
}
