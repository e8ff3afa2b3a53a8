import type { AnalyticsStore, Bots, Scope } from '../store/analytics-store.ts';
import { PAGE_VIEW } from '../store/stats-store.ts';
import type { Filter } from './filters.ts';
import { countsOf, metricValue, type Counts } from './metrics.ts';
import {
  bucketsFor,
  invalid,
  iso,
  type Range,
  type SeriesMetric,
  type StatsService,
} from './stats-service.ts';
import type { Interval } from './time-buckets.ts';

/** A question's filters and bots choice. */
export interface Selection {
  filters: readonly Filter[];
  bots: Bots;
}

/**
 * The rollups hold every non-bot event and nothing else (issue 20 contract), so they answer a
 * question with no filter and bots=exclude, exactly and fast. Anything else scans.
 */
export const rollupAnswers = (sel: Selection) => sel.filters.length === 0 && sel.bots === 'exclude';

/**
 * The stats endpoints under filters and `bots`: the rollups (StatsService) where they answer,
 * the scan engine (AnalyticsStore) elsewhere; visit figures always from tally.sessions.
 */
export class ScopedStats {
  readonly #stats: StatsService;
  readonly #store: AnalyticsStore;

  constructor(stats: StatsService, store: AnalyticsStore) {
    this.#stats = stats;
    this.#store = store;
  }

  /**
   * The totals of a selection: event counts, visitors and the visits' sums, plus the median
   * duration. `need` leaves a side out (its counts read zero): a breakdown of event metrics has no
   * use for the visit totals, whose scan under event filters joins every visit to its events.
   */
  async totals(
    project: string,
    range: Range,
    sel: Selection,
    need: { events: boolean; visits: boolean } = { events: true, visits: true },
  ): Promise<{ counts: Counts; medianMs: number | null }> {
    const scope: Scope = { project, ...range, ...sel };
    const [events, visits] = await Promise.all([
      !need.events
        ? undefined
        : rollupAnswers(sel)
          ? this.#stats.summary(project, range).then((s) => ({
              key: null,
              visitors: s.unique_users,
              events: s.events,
              page_views: s.page_views,
            }))
          : this.#store.eventGroups(scope, { kind: 'none' }).then((rows) => rows[0]),
      need.visits ? this.#store.visitGroups(scope, { kind: 'none' }).then((rows) => rows[0]) : undefined,
    ]);
    return { counts: countsOf(events, visits), medianMs: visits?.median_ms ?? null };
  }

  async summary(project: string, range: Range, sel: Selection) {
    const { counts, medianMs } = await this.totals(project, range, sel);
    return {
      from: iso(range.from),
      to: iso(range.to),
      events: counts.events,
      page_views: counts.page_views,
      unique_users: counts.visitors,
      visitors: counts.visitors,
      visits: counts.visits,
      bounce_rate: metricValue('bounce_rate', counts),
      visit_duration: metricValue('visit_duration', counts),
      visit_duration_median: medianMs === null ? null : Math.round(medianMs / 1000),
      views_per_visit: metricValue('views_per_visit', counts),
    };
  }

  async timeseries(
    project: string,
    range: Range,
    sel: Selection,
    q: {
      metric: SeriesMetric;
      interval: Interval;
      tz: string;
      eventType?: string | undefined;
      pageUrl?: string | undefined;
    },
  ) {
    const plain = q.eventType === undefined && q.pageUrl === undefined;
    if (rollupAnswers(sel) && q.metric !== 'visits' && (q.metric !== 'visitors' || plain)) {
      const metric = q.metric === 'visitors' ? 'unique_users' : q.metric;
      const answer = await this.#stats.timeseries(project, range, { ...q, metric });
      return { ...answer, metric: q.metric };
    }
    if (q.pageUrl !== undefined) {
      throw invalid(
        'page_url',
        'page_url cannot be combined with filter, bots or metrics visitors and visits: use filter=page==<path>',
        'TALLY_UNSUPPORTED_FILTER',
      );
    }
    const buckets = bucketsFor(range, q.interval, q.tz);
    const filters: Filter[] = [...sel.filters];
    if (q.eventType !== undefined) {
      filters.push({ dimension: { kind: 'event', name: 'event_type' }, op: 'is', values: [q.eventType] });
    }
    const scope: Scope = { project, ...range, filters, bots: sel.bots };
    const grouping = { kind: 'buckets', starts: buckets.map((b) => b.from) } as const;
    const values = new Map<number, number>();
    if (q.metric === 'visits') {
      for (const row of await this.#store.visitGroups(scope, grouping))
        values.set(Number(row.key), row.visits);
    } else {
      const field = q.metric === 'unique_users' ? 'visitors' : q.metric;
      for (const row of await this.#store.eventGroups(scope, grouping))
        values.set(Number(row.key), row[field]);
    }
    return {
      metric: q.metric,
      interval: q.interval,
      tz: q.tz,
      from: iso(range.from),
      to: iso(range.to),
      points: buckets.map((b, i) => ({ t: b.label, value: values.get(i) ?? 0 })),
    };
  }

  async topPages(project: string, range: Range, sel: Selection, limit: number) {
    if (rollupAnswers(sel)) return this.#stats.topPages(project, range, limit);
    const rows = await this.#store.eventGroups(
      { project, ...range, ...sel },
      { kind: 'column', column: 'page_url' },
      { type: PAGE_VIEW, top: limit },
    );
    return {
      from: iso(range.from),
      to: iso(range.to),
      pages: rows.map((r) => ({ page_url: String(r.key), views: r.events })),
    };
  }

  async eventTypes(project: string, range: Range, sel: Selection, limit: number) {
    if (rollupAnswers(sel)) return this.#stats.eventTypes(project, range, limit);
    const rows = await this.#store.eventGroups(
      { project, ...range, ...sel },
      { kind: 'column', column: 'type' },
      { top: limit },
    );
    return {
      from: iso(range.from),
      to: iso(range.to),
      types: rows.map((r) => ({ type: String(r.key), count: r.events })),
    };
  }
}
