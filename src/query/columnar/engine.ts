import type { Bots, GroupKey } from '../../store/analytics-store.ts';
import type { Dimension, Filter } from '../filters.ts';
import type { Counts } from '../metrics.ts';
import type { ColumnarModel } from './model.ts';
import type { ScanPool } from './scan-pool.ts';
import { keySpace, scan, type ColumnarGrouping, type ScanQuestion, type ScanSums } from './scan.ts';

export interface ColumnarSelection {
  /** Epoch ms, [from, to). */
  from: number;
  to: number;
  filters: readonly Filter[];
  bots: Bots;
}

export interface ColumnarGroup {
  /** The dimension's value (null: none), or the 0-based bucket index (-1: before the first start). */
  key: GroupKey;
  counts: Counts;
}

export interface ColumnarAnswer {
  /** Every key with a selected event or a counted visit, in no particular order. */
  groups: ColumnarGroup[];
  /** The sums over the whole selection (a visit or visitor under several keys counts once). */
  total: Counts;
  /** The total's median visit duration, ms (only when asked). */
  medianMs: number | null;
}

/**
 * Answers the stats questions of issue 20 from a ColumnarModel, exactly as the scan engine does
 * (src/store/analytics-store.ts + src/query/scoped-stats.ts): the same integer sums (Counts),
 * from which src/query/metrics.ts computes every metric. Not wired into the HTTP service yet
 * (src/query/QUERY_PLANS.md, "A columnar read model in the query process").
 */
export class ColumnarEngine {
  readonly #model: ColumnarModel;
  readonly #pool: ScanPool | undefined;

  /** Scans on the calling thread, or split across `pool`'s threads. */
  constructor(model: ColumnarModel, opts: { pool?: ScanPool } = {}) {
    this.#model = model;
    this.#pool = opts.pool;
  }

  async #scan(q: ScanQuestion): Promise<ScanSums> {
    return this.#pool === undefined ? scan(this.#model, q) : this.#pool.scan(q);
  }

  /** The sums of a selection, grouped; `need` leaves a side out (its counts read zero). */
  async answer(
    sel: ColumnarSelection,
    grouping: ColumnarGrouping,
    need: { events: boolean; visits: boolean; median?: boolean } = { events: true, visits: true },
  ): Promise<ColumnarAnswer> {
    const median = need.median === true && need.visits;
    const sums = await this.#scan({ ...sel, grouping, need: { ...need, median } });
    const { dict } = keySpace(this.#model, grouping);
    const groups: ColumnarGroup[] = [];
    for (let k = 0; k < sums.keys; k++) {
      if (sums.events[k] === 0 && sums.visits[k] === 0) continue;
      const key: GroupKey = grouping.kind === 'buckets' ? k - 1 : dict === undefined ? null : dict.value(k);
      groups.push({ key, counts: countsAt(sums, k) });
    }
    return { groups, total: countsAt(sums, sums.keys), medianMs: sums.medianMs };
  }

  /** The summary's sums and median duration. */
  async summary(sel: ColumnarSelection): Promise<{ counts: Counts; medianMs: number | null }> {
    const a = await this.answer(sel, { kind: 'none' }, { events: true, visits: true, median: true });
    return { counts: a.total, medianMs: a.medianMs };
  }

  /** A breakdown's rows (unsorted) and its total, on the sides the metrics need. */
  breakdown(
    sel: ColumnarSelection,
    dimension: Dimension,
    need: { events: boolean; visits: boolean },
  ): Promise<ColumnarAnswer> {
    return this.answer(sel, { kind: 'dimension', dimension }, need);
  }

  /** Distinct users per bucket (bucket starts ascending, epoch ms), one value per start. */
  async uniqueUsers(sel: ColumnarSelection, starts: readonly number[]): Promise<number[]> {
    const sums = await this.#scan({
      ...sel,
      grouping: { kind: 'buckets', starts },
      need: { events: true, visits: false, median: false },
    });
    return starts.map((_, b) => sums.visitors[b + 1]);
  }
}

function countsAt(s: ScanSums, k: number): Counts {
  return {
    visitors: s.visitors[k],
    events: s.events[k],
    page_views: s.pageViews[k],
    visits: s.visits[k],
    bounces: s.bounces[k],
    duration_ms: s.durationMs[k],
    visit_page_views: s.visitPageViews[k],
  };
}
