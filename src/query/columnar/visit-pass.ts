import type { CodeFilter } from './compile-filters.ts';
import { KEY, type KeySpace, type ScanColumns, type ScanSums } from './scan.ts';

/** A visit's state bits for a question. */
export const PASS = 1; // it passes the visit-level filters
export const SELECTED = 2; // …and starts in range with the bots wanted: it is counted

/** PASS and SELECTED of the visits [v0, v1), written into `state` (other visits are never read). */
export function visitStates(
  c: ScanColumns,
  [v0, v1]: readonly [number, number],
  filters: readonly CodeFilter[],
  from: number,
  to: number,
  botWant: number,
  state: Uint8Array,
): Uint8Array {
  const { visitStart: start, visitIsBot: isBot } = c;
  const nf = filters.length;
  for (let v = v0; v < v1; v++) {
    let ok = true;
    for (let j = 0; j < nf && ok; j++) ok = filters[j].pass[filters[j].codes[v]] !== 0;
    if (!ok) {
      state[v] = 0;
      continue;
    }
    const s = start[v];
    state[v] = s >= from && s < to && (botWant < 0 || isBot[v] === botWant) ? PASS | SELECTED : PASS;
  }
  return state;
}

/** Adds visit v to key k's sums; returns its duration (ms). */
export function addVisit(c: ScanColumns, sums: ScanSums, k: number, v: number): number {
  const n = c.visitPageViews[v];
  const d = c.visitEnd[v] - c.visitStart[v];
  sums.visits[k]++;
  if (c.visitEvents[v] === 1 && n === 1) sums.bounces[k]++;
  // As the scan engine sums round(duration in ms) per visit.
  sums.durationMs[k] += Math.round(d);
  sums.visitPageViews[k] += n;
  return d;
}

export interface VisitPass {
  /** The visits this pass reads: [v0, v1), or only those of `only` when given. */
  v0: number;
  v1: number;
  /** Just these users' visits (ascending, within [v0, v1)): those a visit digest left (visit-digest.ts). */
  only?: Uint32Array;
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
  c: ScanColumns,
  p: VisitPass,
  sums: ScanSums,
  durations: Float64Array | undefined,
): number {
  const only = p.only;
  if (only === undefined) return countRange(c, p, p.v0, p.v1, sums, durations, 0);
  const { userVisits } = c;
  let n = 0;
  for (let x = 0; x < only.length; x++) {
    const u = only[x];
    n = countRange(c, p, userVisits[u], userVisits[u + 1], sums, durations, n);
  }
  return n;
}

/** countVisits over the visits [v0, v1), its durations written from durations[n]; returns the new n. */
function countRange(
  c: ScanColumns,
  p: VisitPass,
  v0: number,
  v1: number,
  sums: ScanSums,
  durations: Float64Array | undefined,
  n: number,
): number {
  const { visitStart: start, visitIsBot: isBot } = c;
  const { from, to, botWant, filters, space } = p;
  const nf = filters.length;
  const K = sums.keys;
  for (let v = v0; v < v1; v++) {
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
    addVisit(c, sums, k, v);
    const d = addVisit(c, sums, K, v);
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
