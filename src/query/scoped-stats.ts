import { TallyError } from '../errors/tally-error.ts';
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
import type { Layers } from './columnar/layers.ts';
import type { ReadModel } from './read-model.ts';

/** The summary's totals from the read model: one pass, visits always (it holds the raw rows). */
function modelTotals(layers: Layers, range: Range, sel: Selection) {
  const a = layers.answer(
    { from: range.from, to: range.to, ...sel },
    { kind: 'none' },
    {
      events: true,
      visits: true,
      median: true,
    },
  );
  return { counts: a.total, medianMs: a.medianMs, visits: true };
}

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
 * Where the raw rows (tally.events, and tally.sessions built from them) exist: not at all with
 * TALLY_STORE_RAW=false, and only from `cutoff()` (epoch ms) on under TALLY_RAW_RETENTION_DAYS.
 */
export interface RawWindow {
  stored: boolean;
  cutoff: () => number;
}

/** The readers of one answer, all on one snapshot. */
export interface Readers {
  stats: StatsService;
  store: AnalyticsStore;
}
export type Snapshot = <T>(read: (readers: Readers) => Promise<T>) => Promise<T>;

const rawCode = 'TALLY_RAW_UNAVAILABLE';

/**
 * The stats endpoints under filters and `bots`: the rollups (StatsService) where they answer,
 * the scan engine (AnalyticsStore) elsewhere; visit figures always from tally.sessions.
 * Every scan runs in `snapshot` (read-only, one snapshot, the answer's work_mem): the pool
 * answers only the plain rollup questions, one statement each.
 */
export class ScopedStats {
  readonly #stats: StatsService;
  readonly #raw: RawWindow;
  readonly #model: ReadModel | undefined;
  /** Runs the statements of one answer on one snapshot (see src/store/read-snapshot.ts). */
  readonly snapshot: Snapshot;

  constructor(stats: StatsService, opts: { raw: RawWindow; snapshot: Snapshot; model?: ReadModel }) {
    this.#stats = stats;
    this.#raw = opts.raw;
    this.#model = opts.model;
    this.snapshot = opts.snapshot;
  }

  /**
   * The columnar read model's layers when they answer this question: the raw rows cover the
   * range and the model holds the project's current data version (src/query/read-model.ts),
   * or catches up to it within `waitMs` (the model's own bound by default). Undefined: answer
   * from PostgreSQL.
   */
  async layers(project: string, range: Range, waitMs?: number): Promise<Layers | undefined> {
    if (this.#model === undefined || !this.rawCovers(range)) return undefined;
    return this.#model.at(project, waitMs);
  }

  /** Whether the raw rows cover the whole range (so visits and scans are exact there). */
  rawCovers(range: Range): boolean {
    return this.#raw.stored && range.from >= this.#raw.cutoff();
  }

  /**
   * Refuses a question only the raw rows answer when they are not there: a coded 400 naming
   * `filter` or `bots` when those are what needs them, else `field` (the visits or dimension
   * asked for); `from` when the range starts before the retention cutoff. Never a silent 0.
   */
  requireRaw(range: Range, sel: Selection, field: string): void {
    const cause = sel.filters.length > 0 ? 'filter' : sel.bots !== 'exclude' ? 'bots' : field;
    if (!this.#raw.stored) {
      const message = `${cause} needs the raw events, which this server does not store (TALLY_STORE_RAW=false)`;
      throw new TallyError(rawCode, message, {
        details: [{ index: 0, field: cause, code: rawCode, message }],
      });
    }
    const cutoff = this.#raw.cutoff();
    if (range.from < cutoff) {
      const message = `${cause} needs the raw events, kept from ${iso(cutoff)} on (TALLY_RAW_RETENTION_DAYS): from must not be earlier`;
      throw new TallyError(rawCode, message, {
        details: [{ index: 0, field: 'from', code: rawCode, message }],
      });
    }
  }

  /**
   * The totals of a selection: event counts, visitors and the visits' sums, plus the median
   * duration. `visits` is undefined when the raw rows do not cover the range (rollup questions only).
   * `need` leaves a side out (its counts read zero): a breakdown of event metrics has no use for
   * the visit totals, whose scan under event filters joins every visit to its events.
   */
  async totals(
    project: string,
    range: Range,
    sel: Selection,
    readers: Readers,
    need: { events: boolean; visits: boolean } = { events: true, visits: true },
  ): Promise<{ counts: Counts; medianMs: number | null; visits: boolean }> {
    const scope: Scope = { project, ...range, ...sel };
    const withVisits = this.rawCovers(range);
    const [events, visits] = await Promise.all([
      !need.events
        ? undefined
        : rollupAnswers(sel)
          ? readers.stats.summary(project, range).then((s) => ({
              key: null,
              visitors: s.unique_users,
              events: s.events,
              page_views: s.page_views,
            }))
          : readers.store.eventGroups(scope, { kind: 'none' }).then((rows) => rows[0]),
      withVisits && need.visits
        ? readers.store.visitGroups(scope, { kind: 'none' }).then((rows) => rows[0])
        : undefined,
    ]);
    return { counts: countsOf(events, visits), medianMs: visits?.median_ms ?? null, visits: withVisits };
  }

  async summary(project: string, range: Range, sel: Selection) {
    // Without filters the rollups answer the event figures; the visit figures then show as null
    // where the raw rows are missing, rather than failing the dashboard's summary.
    if (!rollupAnswers(sel)) this.requireRaw(range, sel, 'filter');
    const layers = await this.layers(project, range);
    const { counts, medianMs, visits } =
      layers === undefined
        ? await this.snapshot((readers) => this.totals(project, range, sel, readers))
        : modelTotals(layers, range, sel);
    const visit = <T>(value: T): T | null => (visits ? value : null);
    return {
      from: iso(range.from),
      to: iso(range.to),
      events: counts.events,
      page_views: counts.page_views,
      unique_users: counts.visitors,
      visitors: counts.visitors,
      visits: visit(counts.visits),
      bounce_rate: visit(metricValue('bounce_rate', counts)),
      visit_duration: visit(metricValue('visit_duration', counts)),
      visit_duration_median: medianMs === null ? null : Math.round(medianMs / 1000),
      views_per_visit: visit(metricValue('views_per_visit', counts)),
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
    // unique_users and visitors are one metric: under event_type both count from the raw events.
    const plain = q.eventType === undefined && q.pageUrl === undefined;
    const users = q.metric === 'visitors' || q.metric === 'unique_users';
    // Distinct users per bucket: the model where it holds the range (the rollups' minute arrays
    // are slow for hours of a zone off the hour, QUERY_PLANS.md), else the rollups.
    const layers = q.pageUrl === undefined ? await this.layers(project, range) : undefined;
    if (
      rollupAnswers(sel) &&
      q.metric !== 'visits' &&
      (!users || plain) &&
      (layers === undefined || !users)
    ) {
      const metric = q.metric === 'visitors' ? 'unique_users' : q.metric;
      const answer = await this.#stats.timeseries(project, range, { ...q, metric });
      return { ...answer, metric: q.metric };
    }
    if (q.pageUrl !== undefined) {
      throw invalid(
        'page_url',
        'page_url cannot be combined with filter, bots or metrics unique_users, visitors and visits: use filter=page==<path>',
        'TALLY_UNSUPPORTED_FILTER',
      );
    }
    this.requireRaw(range, sel, q.metric === 'visits' ? 'metric' : 'event_type');
    const buckets = bucketsFor(range, q.interval, q.tz);
    const filters: Filter[] = [...sel.filters];
    if (q.eventType !== undefined) {
      filters.push({ dimension: { kind: 'event', name: 'event_type' }, op: 'is', values: [q.eventType] });
    }
    const scope: Scope = { project, ...range, filters, bots: sel.bots };
    const grouping = { kind: 'buckets', starts: buckets.map((b) => b.from) } as const;
    const values = new Map<number, number>();
    if (layers !== undefined) {
      const visits = q.metric === 'visits';
      const answer = layers.answer({ from: range.from, to: range.to, filters, bots: sel.bots }, grouping, {
        events: !visits,
        visits,
      });
      const field = visits ? 'visits' : q.metric === 'unique_users' ? 'visitors' : q.metric;
      for (const g of answer.groups) values.set(Number(g.key), g.counts[field]);
    } else if (q.metric === 'visits') {
      const rows = await this.snapshot(({ store }) => store.visitGroups(scope, grouping));
      for (const row of rows) values.set(Number(row.key), row.visits);
    } else {
      const field = q.metric === 'unique_users' ? 'visitors' : q.metric;
      const rows = await this.snapshot(({ store }) => store.eventGroups(scope, grouping));
      for (const row of rows) values.set(Number(row.key), row[field]);
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
    this.requireRaw(range, sel, 'filter');
    const rows = await this.snapshot(({ store }) =>
      store.eventGroups(
        { project, ...range, ...sel },
        { kind: 'column', column: 'page_url' },
        { type: PAGE_VIEW, top: limit },
      ),
    );
    return {
      from: iso(range.from),
      to: iso(range.to),
      pages: rows.map((r) => ({ page_url: String(r.key), views: r.events })),
    };
  }

  async eventTypes(project: string, range: Range, sel: Selection, limit: number) {
    if (rollupAnswers(sel)) return this.#stats.eventTypes(project, range, limit);
    this.requireRaw(range, sel, 'filter');
    const rows = await this.snapshot(({ store }) =>
      store.eventGroups({ project, ...range, ...sel }, { kind: 'column', column: 'type' }, { top: limit }),
    );
    return {
      from: iso(range.from),
      to: iso(range.to),
      types: rows.map((r) => ({ type: String(r.key), count: r.events })),
    };
  }
}
