import type { Bots } from '../../store/analytics-store.ts';
import type { Dimension, Filter } from '../filters.ts';
import { compileFilters, type CodeFilter } from './compile-filters.ts';
import type { Codes, Dictionary } from './dictionary.ts';
import { countByDigest, type Digest } from './digest.ts';
import { countEventsAndMembers, countEventsByOwnKey, type EventPass } from './event-pass.ts';
import { median } from './median.ts';
import type { ColumnarModel } from './model.ts';
import { countByGrid, type SpanGrid } from './span-grid.ts';
import { countVisitsByDigest, type VisitDigest } from './visit-digest.ts';
import { countVisits, visitStates } from './visit-pass.ts';

/** How a scan groups: not at all, by a dimension, or by time bucket (ascending starts, epoch ms). */
export type ColumnarGrouping =
  | { kind: 'none' }
  | { kind: 'dimension'; dimension: Dimension }
  | { kind: 'buckets'; starts: readonly number[] };

export interface ScanQuestion {
  from: number;
  to: number;
  filters: readonly Filter[];
  bots: Bots;
  grouping: ColumnarGrouping;
  /** The sides to count; the median needs `visits` and is computed for the total only. */
  need: { events: boolean; visits: boolean; median: boolean };
}

/** Per-key sums, indexed by key code; index `keys` holds the total over every key. */
export interface ScanSums {
  keys: number;
  visitors: Float64Array;
  events: Float64Array;
  pageViews: Float64Array;
  visits: Float64Array;
  bounces: Float64Array;
  durationMs: Float64Array;
  visitPageViews: Float64Array;
  medianMs: number | null;
}

/** How an event (and a visit) finds its key. */
export const KEY = { none: 0, eventCode: 1, visitCode: 2, bucket: 3 } as const;

/** The key space of a grouping: its kind, size and codes. Plain data (it crosses to workers). */
export interface KeySpace {
  kind: number;
  keys: number;
  /** Per event (eventCode) or per visit (visitCode). */
  codes: Codes | undefined;
  /** Bucket starts (bucket): key b + 1 for bucket b, key 0 before the first start (width_bucket's 0). */
  starts: Float64Array;
}

const NO_STARTS = new Float64Array(0);

/** The key space of a grouping, and the dictionary naming its keys (none for buckets or no grouping). */
export function keySpace(m: ColumnarModel, g: ColumnarGrouping): { space: KeySpace; dict?: Dictionary } {
  const none = { space: { kind: KEY.none, keys: 1, codes: undefined, starts: NO_STARTS } };
  if (g.kind === 'none') return none;
  if (g.kind === 'buckets') {
    const starts = Float64Array.from(g.starts);
    return { space: { kind: KEY.bucket, keys: starts.length + 1, codes: undefined, starts } };
  }
  const d = g.dimension;
  if (d.kind === 'visit') {
    const c = m.visits.dims[d.name];
    return {
      space: { kind: KEY.visitCode, keys: c.dict.size, codes: c.codes, starts: NO_STARTS },
      dict: c.dict,
    };
  }
  const c = d.kind === 'event' ? m.events.dims[d.name] : m.events.properties.get(d.key);
  // A property no event has: every event is under NULL, the one key of `none`.
  if (c === undefined) return none;
  return {
    space: { kind: KEY.eventCode, keys: c.dict.size, codes: c.codes, starts: NO_STARTS },
    dict: c.dict,
  };
}

/** The arrays a scan reads: the model without its dictionaries (shared with scan workers). */
export interface ScanColumns {
  userEvents: Uint32Array;
  userVisits: Uint32Array;
  ts: Float64Array;
  visitOf: Int32Array;
  isBot: Uint8Array;
  typeCodes: Codes;
  visitStart: Float64Array;
  visitEnd: Float64Array;
  visitEvents: Uint32Array;
  visitPageViews: Uint32Array;
  visitIsBot: Uint8Array;
}

export function scanColumns(m: ColumnarModel): ScanColumns {
  return {
    userEvents: m.userEvents,
    userVisits: m.userVisits,
    ts: m.events.ts,
    visitOf: m.events.visit,
    isBot: m.events.isBot,
    typeCodes: m.events.dims.event_type.codes,
    visitStart: m.visits.start,
    visitEnd: m.visits.end,
    visitEvents: m.visits.events,
    visitPageViews: m.visits.pageViews,
    visitIsBot: m.visits.isBot,
  };
}

/** A question compiled against the model: plain data, so a worker can run a slice of it. */
export interface ScanPlan {
  from: number;
  to: number;
  /** -1: any; 0: humans; 1: bots. */
  botWant: number;
  eventFilters: CodeFilter[];
  visitFilters: CodeFilter[];
  noVisitPasses: boolean;
  /** Nothing can be selected (an impossible filter or an empty range). */
  empty: boolean;
  space: KeySpace;
  pageView: number;
  need: { events: boolean; visits: boolean; median: boolean };
  /**
   * Visits counted from their events: when a visit must hold a selected event (event-level
   * filters), or counts under each value its selected events have (event-level keys).
   */
  visitsByEvents: boolean;
}

export function planScan(m: ColumnarModel, q: ScanQuestion): ScanPlan {
  const { space } = keySpace(m, q.grouping);
  const f = compileFilters(m, q.filters);
  return {
    from: q.from,
    to: q.to,
    botWant: q.bots === 'include' ? -1 : q.bots === 'only' ? 1 : 0,
    eventFilters: f.events,
    visitFilters: f.visits,
    noVisitPasses: f.noVisitPasses,
    empty: f.empty || !(q.to > q.from),
    space,
    pageView: m.events.dims.event_type.dict.find('page_view'),
    need: { ...q.need, median: q.need.median && q.need.visits },
    visitsByEvents: q.need.visits && (f.events.length > 0 || space.kind === KEY.eventCode),
  };
}

/**
 * Arrays a thread reuses from one scan to the next, sized by the visits (3 MB of states, 24 MB of
 * durations at 3 M visits), rather than allocating them per answer. `durations` only where the
 * caller is done with them before its next scan.
 */
export interface Scratch {
  state?: Uint8Array;
  durations?: Float64Array;
}

const scratchOf = new WeakMap<ColumnarModel, Required<Scratch>>();

/**
 * A slice's sums and the durations of its counted visits (for the median): durations[0..n), plus,
 * when a visit digest answered, (digested.sorted − digested.removed) (visit-digest.ts). Only
 * Layers passes a visit digest and reads `digested`; mergeSlices (the pool's) never sees one.
 */
export interface SliceSums {
  sums: ScanSums;
  durations: Float64Array;
  nDurations: number;
  digested?: { sorted: Float64Array; removed: Float64Array };
}

/**
 * Above this share of a visit digest's durations to remove, the median takes the usual way: a
 * short range leaves most users to the visit pass, and sorting their durations would cost more.
 */
const MAX_REMOVED_SHARE = 0.25;

/**
 * Runs a plan over the users [u0, u1) and their visits. Slices of disjoint users add up: a user's
 * events and visits are all in its slice, so visitors and visits never count twice.
 */
export function runSlice(
  c: ScanColumns,
  plan: ScanPlan,
  u0: number,
  u1: number,
  scratch: Scratch = {},
  digests: SliceDigests = {},
): SliceSums {
  const { events: digest, visits: visitDigest, grid } = digests;
  const K = plan.space.keys;
  const sums = emptySums(K);
  const v0 = c.userVisits[u0];
  const v1 = c.userVisits[u1];
  const durations =
    plan.need.median && scratch.durations !== undefined
      ? scratch.durations
      : new Float64Array(plan.need.median ? v1 - v0 : 0);
  let nDurations = 0;
  if (plan.empty) return { sums, durations, nDurations };
  const { from, to, botWant, space, need, visitsByEvents } = plan;
  const pass: EventPass = {
    u0,
    u1,
    from,
    to,
    botWant,
    filters: plan.eventFilters,
    space,
    pageView: plan.pageView,
  };
  const dur = need.median ? durations : undefined;
  const plain = plan.visitFilters.length === 0 && (space.kind === KEY.eventCode || space.kind === KEY.none);
  const maxRemoved = (n: number) => (need.median ? { maxRemoved: n * MAX_REMOVED_SHARE } : undefined);
  // The users a grid or digest answers are done; the passes read the others' rows.
  const gridRest =
    grid !== undefined && gridAnswers(plan) && u0 === 0 && u1 === c.userEvents.length - 1
      ? countByGrid(grid, c, pass, sums, maxRemoved(grid.sorted.length))
      : undefined;
  if (gridRest !== undefined) pass.only = gridRest.only;
  else if (digest !== undefined && digestable(plan))
    pass.only = countByDigest(digest, pass, sums, { events: need.events, visits: visitsByEvents });
  if (need.events && plain && !visitsByEvents) {
    countEventsByOwnKey(c, pass, sums);
  } else if (need.events || visitsByEvents) {
    scratch.state ??= new Uint8Array(c.visitStart.length);
    const state = visitStates(c, [v0, v1], plan.visitFilters, from, to, botWant, scratch.state);
    nDurations = countEventsAndMembers(
      c,
      pass,
      state,
      plan.noVisitPasses,
      need.events,
      visitsByEvents,
      sums,
      dur,
    );
  }
  let digested: SliceSums['digested'];
  if (need.visits && !visitsByEvents) {
    let only: Uint32Array | undefined;
    if (gridRest !== undefined) {
      only = gridRest.only;
      if (need.median) digested = { sorted: grid!.sorted, removed: gridRest.removed };
    } else if (visitDigest !== undefined && visitDigestable(plan)) {
      const rest = countVisitsByDigest(
        visitDigest,
        c,
        pass,
        sums,
        maxRemoved(visitDigest.sorted.length)?.maxRemoved ?? Infinity,
      );
      if (rest !== undefined) {
        only = rest.only;
        if (need.median) digested = { sorted: visitDigest.sorted, removed: rest.removed };
      }
    }
    const vp = { v0, v1, only, from, to, botWant, filters: plan.visitFilters, space };
    nDurations = countVisits(c, vp, sums, dur);
  }
  // Every selected event has exactly one key: the event totals are the keys' sums.
  for (let k = 0; k < K; k++) {
    sums.events[K] += sums.events[k];
    sums.pageViews[K] += sums.pageViews[k];
  }
  return { sums, durations, nDurations, digested };
}

/**
 * Whether a visit digest (visit-digest.ts) can answer a plan's visits: the unfiltered summary (no
 * filter of any kind, no grouping).
 */
export function visitDigestable(plan: ScanPlan): boolean {
  return (
    plan.need.visits &&
    !plan.empty &&
    !plan.visitsByEvents &&
    plan.eventFilters.length === 0 &&
    plan.visitFilters.length === 0 &&
    plan.space.kind === KEY.none
  );
}

/**
 * Whether a span grid (span-grid.ts) can answer a plan: the unfiltered summary, events and visits
 * both (over every user: the grid's cells are not cut by slices).
 */
export function gridAnswers(plan: ScanPlan): boolean {
  return visitDigestable(plan) && plan.need.events;
}

/** The digests a slice may use, all of the base layer (Layers.answer). */
export interface SliceDigests {
  events?: Digest;
  visits?: VisitDigest;
  grid?: SpanGrid;
}

/**
 * Whether a digest (digest.ts) can answer a plan's events, and its visits when they count by their
 * events' keys (then with the pairs' visit sums, and no median): no filter of any kind, events
 * counted by their own key, their visit's, or none (not time buckets).
 */
export function digestable(plan: ScanPlan): boolean {
  return (
    (plan.need.events || plan.visitsByEvents) &&
    !(plan.visitsByEvents && plan.need.median) &&
    !plan.empty &&
    plan.eventFilters.length === 0 &&
    plan.visitFilters.length === 0 &&
    plan.space.kind !== KEY.bucket
  );
}

const SUM_FIELDS = [
  'visitors',
  'events',
  'pageViews',
  'visits',
  'bounces',
  'durationMs',
  'visitPageViews',
] as const;

/** Every slice's durations of counted visits, one after the other, in a new array. */
export function durationsOf(slices: readonly SliceSums[]): Float64Array {
  const all = new Float64Array(slices.reduce((n, s) => n + s.nDurations, 0));
  let at = 0;
  for (const s of slices) {
    all.set(s.durations.subarray(0, s.nDurations), at);
    at += s.nDurations;
  }
  return all;
}

/** The slices' sums added up, with the median of all their durations. */
export function mergeSlices(slices: readonly SliceSums[], median_: boolean): ScanSums {
  const sums = emptySums(slices[0].sums.keys);
  for (const s of slices) {
    for (const f of SUM_FIELDS) {
      const into = sums[f];
      const from = s.sums[f];
      for (let k = 0; k < into.length; k++) into[k] += from[k];
    }
  }
  if (median_) {
    const all = durationsOf(slices);
    sums.medianMs = median(all, all.length);
  }
  return sums;
}

/**
 * Answers one question in one pass over the events, user by user, plus one over the visits when
 * they are counted on their own (src/query/QUERY_PLANS.md, "A columnar read model in the query
 * process"), with the semantics of the scan engine (src/store/analytics-store.ts). Synchronous.
 */
export function scan(m: ColumnarModel, q: ScanQuestion): ScanSums {
  const plan = planScan(m, q);
  const c = scanColumns(m);
  let scratch = scratchOf.get(m);
  if (scratch === undefined) {
    const n = m.visits.count;
    scratchOf.set(m, (scratch = { state: new Uint8Array(n), durations: new Float64Array(n) }));
  }
  // Synchronous to the end (the median included), so the model's scratch is free again after.
  const slice = runSlice(c, plan, 0, c.userEvents.length - 1, scratch);
  if (!plan.need.median) return slice.sums;
  slice.sums.medianMs = median(slice.durations, slice.nDurations);
  return slice.sums;
}

export function emptySums(keys: number): ScanSums {
  const a = () => new Float64Array(keys + 1);
  return {
    keys,
    visitors: a(),
    events: a(),
    pageViews: a(),
    visits: a(),
    bounces: a(),
    durationMs: a(),
    visitPageViews: a(),
    medianMs: null,
  };
}
