import type { GroupKey } from '../../store/analytics-store.ts';
import { ZERO, type Counts } from '../metrics.ts';
import type { ColumnarAnswer, ColumnarGroup, ColumnarSelection } from './engine.ts';
import { digestOf, retireInDigests } from './digest.ts';
import { median, medianOfParts } from './median.ts';
import type { ColumnarModel } from './model.ts';
import {
  KEY,
  digestable,
  gridAnswers,
  durationsOf,
  keySpace,
  planScan,
  runSlice,
  scanColumns,
  type ColumnarGrouping,
  type ScanSums,
  type Scratch,
  type SliceSums,
  visitDigestable,
} from './scan.ts';
import { adoptSpanGrid, retireInSpanGrids, spanGridOf, type SpanGrid } from './span-grid.ts';
import { adoptVisitDigest, retireInVisitDigest, visitDigestOf, type VisitDigest } from './visit-digest.ts';

/**
 * A read model made of layers: a base ColumnarModel and the deltas built since, each holding the
 * whole current rows of some users. A user lives in exactly one layer (its newest): `retire`
 * hides it in the older ones. So the layers hold disjoint users and their sums add up exactly,
 * visitors and visits included (the same argument as the scan pool's slices of disjoint users).
 *
 * Each layer has its own dictionaries, so their keys are matched by value, not by code.
 */
/**
 * The structures the unfiltered summary with bots excluded (the dashboard's first question) reads
 * in a base: built by the load worker with the columns (load-worker.ts), not in that question's
 * answer, and posted along with the model.
 */
export interface SummaryDigests {
  visit: VisitDigest;
  grid: SpanGrid;
}

export function summaryDigestsOf(m: ColumnarModel): SummaryDigests {
  const c = scanColumns(m);
  const visit = visitDigestOf(m, c);
  return { visit, grid: spanGridOf(m, c, visit, 0, m.events.dims.event_type.dict.find('page_view')) };
}

/** Keeps `d`, built on another thread from the model `m` now is, as `m`'s own. */
export function adoptSummaryDigests(m: ColumnarModel, d: SummaryDigests): void {
  adoptVisitDigest(m, d.visit);
  adoptSpanGrid(m, d.grid);
}

export class Layers {
  readonly #layers: ColumnarModel[];
  readonly #scratch = new WeakMap<ColumnarModel, Scratch>();

  constructor(base: ColumnarModel) {
    this.#layers = [base];
  }

  get count(): number {
    return this.#layers.length;
  }

  /** Events held by the layers after the base (hidden ones included): what a compaction would fold. */
  get deltaEvents(): number {
    let n = 0;
    for (let i = 1; i < this.#layers.length; i++) n += this.#layers[i].events.count;
    return n;
  }

  /** The layers, base first: each user's current rows are in one of them (funnels and the like walk them). */
  get models(): readonly ColumnarModel[] {
    return this.#layers;
  }

  get baseEvents(): number {
    return this.#layers[0].events.count;
  }

  /** Users of the base (retired ones included; the dictionary's missing value not counted). */
  get baseUsers(): number {
    return this.#layers[0].users.size - 1;
  }

  /** Adds `delta`, holding the whole current rows of `users`, and hides those users everywhere else. */
  push(delta: ColumnarModel, users: readonly string[]): void {
    for (const layer of this.#layers) for (const u of users) retire(layer, u);
    this.#layers.push(delta);
  }

  /**
   * The sums of a selection over every layer, grouped; `need` leaves a side out (its counts read
   * zero). Synchronous: no layer changes while it runs.
   */
  answer(
    sel: ColumnarSelection,
    grouping: ColumnarGrouping,
    need: { events: boolean; visits: boolean; median?: boolean },
  ): ColumnarAnswer {
    const wantMedian = need.median === true && need.visits;
    const q = { ...sel, grouping, need: { events: need.events, visits: need.visits, median: wantMedian } };
    const byKey = new Map<GroupKey, Counts>();
    const total = zero();
    const slices: SliceSums[] = [];
    for (const [i, m] of this.#layers.entries()) {
      const plan = planScan(m, q);
      const c = scanColumns(m);
      // The base holds nearly every user: its digests spare reading most events. Deltas are small.
      const visitDigest = i === 0 && visitDigestable(plan) ? visitDigestOf(m, c) : undefined;
      const grid =
        visitDigest !== undefined && gridAnswers(plan)
          ? spanGridOf(m, c, visitDigest, plan.botWant, plan.pageView)
          : undefined;
      // With a grid the summary needs no events digest (nor its build): a short range the grid
      // leaves to the passes reads the events, as most of its users are at the edges anyway.
      const digest =
        i === 0 && grid === undefined && digestable(plan)
          ? digestOf(
              m,
              c,
              plan.space,
              digestName(grouping, plan.space.kind),
              plan.pageView,
              plan.visitsByEvents,
            )
          : undefined;
      const slice = runSlice(c, plan, 0, c.userEvents.length - 1, this.#scratchOf(m), {
        events: digest,
        visits: visitDigest,
        grid,
      });
      slices.push(slice);
      const { dict } = keySpace(m, grouping);
      const s = slice.sums;
      for (let k = 0; k < s.keys; k++) {
        if (s.events[k] === 0 && s.visits[k] === 0) continue;
        const key: GroupKey = grouping.kind === 'buckets' ? k - 1 : dict === undefined ? null : dict.value(k);
        let counts = byKey.get(key);
        if (counts === undefined) byKey.set(key, (counts = zero()));
        add(counts, s, k);
      }
      add(total, s, s.keys);
    }
    const groups: ColumnarGroup[] = [...byKey].map(([key, counts]) => ({ key, counts }));
    return { groups, total, medianMs: wantMedian ? medianOf(slices) : null };
  }

  /** Each layer's reused arrays: the durations stay valid until that layer's next scan. */
  #scratchOf(m: ColumnarModel): Scratch {
    let s = this.#scratch.get(m);
    if (s === undefined) {
      const n = m.visits.count;
      this.#scratch.set(m, (s = { state: new Uint8Array(n), durations: new Float64Array(n) }));
    }
    return s;
  }
}

/**
 * Hides user `userId` in `m`: its events' times and its visits' spans become +Infinity, which
 * every range test of the passes rejects (`t < from || t >= to` and `s >= from && s < to` alike;
 * NaN would slip through the first). Nothing else reads a user's rows without a time test first.
 */
export function retire(m: ColumnarModel, userId: string): void {
  const u = m.users.find(userId);
  if (u < 0) return;
  retireInDigests(m, u);
  retireInVisitDigest(m, u);
  retireInSpanGrids(m, u);
  m.events.ts.fill(Infinity, m.userEvents[u], m.userEvents[u + 1]);
  m.visits.start.fill(Infinity, m.userVisits[u], m.userVisits[u + 1]);
  m.visits.end.fill(Infinity, m.userVisits[u], m.userVisits[u + 1]);
}

/**
 * What a digest is named by: the key its pairs are summed under (a property no event of the
 * layer has keys nothing, as no grouping does: one digest for every such key).
 */
function digestName(g: ColumnarGrouping, kind: number): string {
  if (g.kind !== 'dimension' || kind === KEY.none) return 'none';
  const d = g.dimension;
  return d.kind === 'property' ? `property:${d.key}` : `${d.kind}:${d.name}`;
}

/**
 * The median of every slice's durations. The base's may come as a visit digest's parts (sorted −
 * removed) plus a few durations; every other duration is then `extra` to those parts.
 */
function medianOf(slices: readonly SliceSums[]): number | null {
  const digested = slices.find((s) => s.digested !== undefined)?.digested;
  if (digested !== undefined)
    return medianOfParts(digested.sorted, digested.removed, durationsOf(slices).sort());
  if (slices.length === 1) return median(slices[0].durations, slices[0].nDurations);
  const all = durationsOf(slices);
  return median(all, all.length);
}

function zero(): Counts {
  return { ...ZERO };
}

function add(into: Counts, s: ScanSums, k: number): void {
  into.visitors += s.visitors[k];
  into.events += s.events[k];
  into.page_views += s.pageViews[k];
  into.visits += s.visits[k];
  into.bounces += s.bounces[k];
  into.duration_ms += s.durationMs[k];
  into.visit_page_views += s.visitPageViews[k];
}
