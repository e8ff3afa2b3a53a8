import type { EventGroup, GroupKey, Scope, VisitGroup } from '../store/analytics-store.ts';
import { DIMENSION_HELP, NONE_VALUE, parseDimension, type Dimension } from './filters.ts';
import {
  countsOf,
  metricValue,
  needsEvents,
  needsVisits,
  percentage,
  type BreakdownMetric,
  type Counts,
} from './metrics.ts';
import { BREAKDOWN_METRICS } from './schemas.ts';
import type { ColumnarSelection } from './columnar/engine.ts';
import type { Layers } from './columnar/layers.ts';
import type { ScopedStats, Selection } from './scoped-stats.ts';
import { invalid, iso, type Range } from './stats-service.ts';

export interface BreakdownQuestion {
  dimension: Dimension;
  metrics: BreakdownMetric[];
  sort: { metric: BreakdownMetric; desc: boolean };
  limit: number;
  page: number;
}

const METRIC_SET = new Set<string>(BREAKDOWN_METRICS);

/** Reads `dimension`, `metrics` and `sort` (already schema-checked strings) into a question. */
export function readBreakdown(q: {
  dimension: string;
  metrics: string;
  sort?: string | undefined;
  limit: number;
  page: number;
}): BreakdownQuestion {
  const dimension = parseDimension(q.dimension);
  if (dimension === undefined) throw invalid('dimension', `dimension must be ${DIMENSION_HELP}`);
  const metrics = q.metrics.split(',').map((m) => m.trim());
  for (const m of metrics) {
    if (!METRIC_SET.has(m)) {
      throw invalid('metrics', `unknown metric ${JSON.stringify(m)}: use ${BREAKDOWN_METRICS.join(', ')}`);
    }
  }
  if (new Set(metrics).size !== metrics.length) throw invalid('metrics', 'a metric is listed twice');
  const typed = metrics as BreakdownMetric[];
  let sort = { metric: typed[0], desc: true };
  if (q.sort !== undefined) {
    const m = /^([a-z_]+):(asc|desc)$/.exec(q.sort);
    if (m === null || !METRIC_SET.has(m[1])) {
      throw invalid(
        'sort',
        `sort must be <metric>:asc or <metric>:desc, metric one of ${BREAKDOWN_METRICS.join(', ')}`,
      );
    }
    sort = { metric: m[1] as BreakdownMetric, desc: m[2] === 'desc' };
  }
  return { dimension, metrics: typed, sort, limit: q.limit, page: q.page };
}

interface Row {
  key: string | null;
  value: string;
  counts: Counts;
}

/**
 * `GET /v1/stats/breakdown`: the selected events and visits grouped by one dimension (the scan
 * engine), every row's metrics computed from exact integer sums, sorted and paged here, and the
 * total from the same path as the summary (the rollups where they answer), all on one snapshot.
 */
export class BreakdownService {
  readonly #scoped: ScopedStats;

  constructor(scoped: ScopedStats) {
    this.#scoped = scoped;
  }

  async breakdown(project: string, range: Range, sel: Selection, q: BreakdownQuestion) {
    this.#scoped.requireRaw(range, sel, 'dimension');
    const layers = await this.#scoped.layers(project, range);
    const { rows, total } =
      layers === undefined
        ? await this.#fromPostgres(project, range, sel, q)
        : fromModel(layers, { from: range.from, to: range.to, ...sel }, q);
    const sortBy = (r: Row) => metricValue(q.sort.metric, r.counts);
    rows.sort((a, b) => compareRows(a, b, sortBy(a), sortBy(b), q.sort.desc));
    const offset = (q.page - 1) * q.limit;
    const base: BreakdownMetric = q.metrics.includes('visitors') ? 'visitors' : q.metrics[0];
    const whole = metricValue(base, total.counts);
    return {
      dimension: q.dimension.kind === 'property' ? `property:${q.dimension.key}` : q.dimension.name,
      from: iso(range.from),
      to: iso(range.to),
      metrics: q.metrics,
      results: rows.slice(offset, offset + q.limit).map((r) => ({
        value: r.value,
        ...pick(q.metrics, r.counts),
        percentage: percentage(metricValue(base, r.counts), whole),
      })),
      total: pick(q.metrics, total.counts),
      page: q.page,
      limit: q.limit,
      has_more: rows.length > offset + q.limit,
    };
  }

  /** The rows and total from the scan engine, on one snapshot. */
  async #fromPostgres(project: string, range: Range, sel: Selection, q: BreakdownQuestion) {
    const scope: Scope = { project, ...range, ...sel };
    const grouping = { kind: 'dimension', dimension: q.dimension } as const;
    const wanted = [...q.metrics, q.sort.metric];
    const [events, visits, total] = await this.#scoped.snapshot((readers) =>
      Promise.all([
        needsEvents(wanted) ? readers.store.eventGroups(scope, grouping) : Promise.resolve([]),
        needsVisits(wanted) ? readers.store.visitGroups(scope, grouping) : Promise.resolve([]),
        // Only the sides the shown metrics read: the total shows q.metrics, not the sort metric.
        this.#scoped.totals(project, range, sel, readers, {
          events: needsEvents(q.metrics),
          visits: needsVisits(q.metrics),
        }),
      ]),
    );
    return { rows: merge(events, visits), total };
  }
}

/** The rows and total from the read model: one pass, the total counted alongside the rows. */
function fromModel(layers: Layers, sel: ColumnarSelection, q: BreakdownQuestion) {
  const wanted = [...q.metrics, q.sort.metric];
  const answer = layers.answer(
    sel,
    { kind: 'dimension', dimension: q.dimension },
    { events: needsEvents(wanted), visits: needsVisits(wanted) },
  );
  const rows: Row[] = answer.groups.map(({ key, counts }) => {
    const k = key === null ? null : String(key);
    return { key: k, value: k ?? NONE_VALUE, counts };
  });
  return { rows, total: { counts: answer.total } };
}

function pick(metrics: readonly BreakdownMetric[], counts: Counts): Record<string, number | null> {
  return Object.fromEntries(metrics.map((m) => [m, metricValue(m, counts)]));
}

/** One row per value found on either side; a value missing on one side counts zero there. */
function merge(events: readonly EventGroup[], visits: readonly VisitGroup[]): Row[] {
  const byKey = new Map<GroupKey, { e?: EventGroup; v?: VisitGroup }>();
  for (const e of events) byKey.set(e.key, { e });
  for (const v of visits) byKey.set(v.key, { ...byKey.get(v.key), v });
  return [...byKey].map(([key, { e, v }]) => {
    const k = key === null ? null : String(key);
    return { key: k, value: k ?? NONE_VALUE, counts: countsOf(e, v) };
  });
}

/**
 * The sort metric (nulls last either way), then the shown value ascending in UTF-16 code units,
 * then a real "(none)" before the missing value: a total order, so pages never overlap.
 */
function compareRows(a: Row, b: Row, x: number | null, y: number | null, desc: boolean): number {
  if (x !== y) {
    if (x === null) return 1;
    if (y === null) return -1;
    return desc ? y - x : x - y;
  }
  if (a.value !== b.value) return a.value < b.value ? -1 : 1;
  return (a.key === null ? 1 : 0) - (b.key === null ? 1 : 0);
}
