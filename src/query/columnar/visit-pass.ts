import type { CodeFilter } from './compile-filters.ts';
import type { ColumnarModel } from './model.ts';
import { KEY, type KeySpace, type ScanSums } from './scan.ts';

/** A visit's state bits for a question. */
export const PASS = 1; // it passes the visit-level filters
export const SELECTED = 2; // …and starts in range with the bots wanted: it is counted

/** PASS and SELECTED of every visit. */
export function visitStates(
  m: ColumnarModel,
  filters: readonly CodeFilter[],
  from: number,
  to: number,
  botWant: number,
): Uint8Array {
  const { count, start, isBot } = m.visits;
  const state = new Uint8Array(count);
  const nf = filters.length;
  for (let v = 0; v < count; v++) {
    let ok = true;
    for (let j = 0; j < nf && ok; j++) ok = filters[j].pass[filters[j].codes[v]] !== 0;
    if (!ok) continue;
    const s = start[v];
    state[v] = s >= from && s < to && (botWant < 0 || isBot[v] === botWant) ? PASS | SELECTED : PASS;
  }
  return state;
}

/** Adds visit v to key k's sums; returns its duration (ms). */
export function addVisit(m: ColumnarModel, sums: ScanSums, k: number, v: number): number {
  const vs = m.visits;
  const n = vs.pageViews[v];
  const d = vs.end[v] - vs.start[v];
  sums.visits[k]++;
  if (vs.events[v] === 1 && n === 1) sums.bounces[k]++;
  // As the scan engine sums round(duration in ms) per visit.
  sums.durationMs[k] += Math.round(d);
  sums.visitPageViews[k] += n;
  return d;
}

export interface VisitPass {
  from: number;
  to: number;
  botWant: number;
  filters: readonly CodeFilter[];
  space: KeySpace;
}

/**
 * The visits started in range that pass the visit-level filters, by their own key (visit column,
 * bucket of their start, or none), without reading their events: for questions with no
 * event-level filter. Durations go to `durations` (if given); returns how many.
 */
export function countVisits(
  m: ColumnarModel,
  p: VisitPass,
  sums: ScanSums,
  durations: Float64Array | undefined,
): number {
  const { count, start, isBot } = m.visits;
  const { from, to, botWant, filters, space } = p;
  const nf = filters.length;
  const K = sums.keys;
  let n = 0;
  for (let v = 0; v < count; v++) {
    const s = start[v];
    if (s < from || s >= to || (botWant >= 0 && isBot[v] !== botWant)) continue;
    let ok = true;
    for (let j = 0; j < nf && ok; j++) ok = filters[j].pass[filters[j].codes[v]] !== 0;
    if (!ok) continue;
    const k =
      space.kind === KEY.visitCode
        ? space.codes![v]
        : space.kind === KEY.bucket
          ? bucketOf(space.starts, s)
          : 0;
    addVisit(m, sums, k, v);
    const d = addVisit(m, sums, K, v);
    if (durations !== undefined) durations[n++] = d;
  }
  return n;
}

/** 1 + the index of the last start ≤ t (0 before the first): width_bucket over the starts. */
export function bucketOf(starts: Float64Array, t: number): number {
  let lo = 0;
  let hi = starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (starts[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
