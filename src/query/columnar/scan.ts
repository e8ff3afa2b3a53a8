import type { Bots } from '../../store/analytics-store.ts';
import type { Dimension, Filter } from '../filters.ts';
import { compileFilters } from './compile-filters.ts';
import type { Codes, Dictionary } from './dictionary.ts';
import { countEventsByOwnKey, countEventsAndMembers, type EventPass } from './event-pass.ts';
import { median } from './median.ts';
import type { ColumnarModel } from './model.ts';
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

/** The key space of a grouping: its kind, size, codes and the text of each key. */
export interface KeySpace {
  kind: number;
  keys: number;
  /** Per event (eventCode) or per visit (visitCode). */
  codes: Codes | undefined;
  dict: Dictionary | undefined;
  /** Bucket starts (bucket): key b + 1 for bucket b, key 0 before the first start (width_bucket's 0). */
  starts: Float64Array;
}

const NO_STARTS = new Float64Array(0);

export function keySpace(m: ColumnarModel, g: ColumnarGrouping): KeySpace {
  const none = { kind: KEY.none, keys: 1, codes: undefined, dict: undefined, starts: NO_STARTS };
  if (g.kind === 'none') return none;
  if (g.kind === 'buckets') {
    const starts = Float64Array.from(g.starts);
    return { kind: KEY.bucket, keys: starts.length + 1, codes: undefined, dict: undefined, starts };
  }
  const d = g.dimension;
  if (d.kind === 'visit') {
    const c = m.visits.dims[d.name];
    return { kind: KEY.visitCode, keys: c.dict.size, codes: c.codes, dict: c.dict, starts: NO_STARTS };
  }
  const c = d.kind === 'event' ? m.events.dims[d.name] : m.events.properties.get(d.key);
  // A property no event has: every event is under NULL, the one key of `none`.
  if (c === undefined) return none;
  return { kind: KEY.eventCode, keys: c.dict.size, codes: c.codes, dict: c.dict, starts: NO_STARTS };
}

/**
 * Answers one question in one pass over the events, user by user, plus one over the visits when
 * they are counted on their own (src/query/QUERY_PLANS.md, "A columnar read model in the query
 * process"), with the semantics of the scan engine (src/store/analytics-store.ts). Synchronous.
 */
export function scan(m: ColumnarModel, q: ScanQuestion): ScanSums {
  const space = keySpace(m, q.grouping);
  const K = space.keys;
  const sums = emptySums(K);
  const f = compileFilters(m, q.filters);
  if (f.empty || !(q.to > q.from)) return sums;
  const botWant = q.bots === 'include' ? -1 : q.bots === 'only' ? 1 : 0;
  const durations = q.need.median ? new Float64Array(m.visits.count) : undefined;
  // A visit is counted from its events when it must hold a selected event (event-level filters),
  // or when it counts under each value its selected events have (event-level keys).
  const visitsByEvents = q.need.visits && (f.events.length > 0 || space.kind === KEY.eventCode);
  const p: EventPass = {
    from: q.from,
    to: q.to,
    botWant,
    filters: f.events,
    space,
    pageView: m.events.dims.event_type.dict.find('page_view'),
  };
  let nDurations = 0;
  const plain = f.visits.length === 0 && (space.kind === KEY.eventCode || space.kind === KEY.none);
  if (q.need.events && plain && !visitsByEvents) {
    countEventsByOwnKey(m, p, sums);
  } else if (q.need.events || visitsByEvents) {
    const state = visitStates(m, f.visits, q.from, q.to, botWant);
    nDurations = countEventsAndMembers(
      m,
      p,
      state,
      f.noVisitPasses,
      q.need.events,
      visitsByEvents,
      sums,
      durations,
    );
  }
  if (q.need.visits && !visitsByEvents) {
    nDurations = countVisits(
      m,
      { from: q.from, to: q.to, botWant, filters: f.visits, space },
      sums,
      durations,
    );
  }
  // Every selected event has exactly one key: the event totals are the keys' sums.
  for (let k = 0; k < K; k++) {
    sums.events[K] += sums.events[k];
    sums.pageViews[K] += sums.pageViews[k];
  }
  sums.medianMs = durations === undefined ? null : median(durations, nDurations);
  return sums;
}

function emptySums(keys: number): ScanSums {
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
