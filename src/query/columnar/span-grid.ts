import type { ColumnarModel } from './model.ts';
import type { ScanColumns, ScanSums } from './scan.ts';
import type { VisitDigest } from './visit-digest.ts';

/**
 * The unfiltered summary without a pass over every user: each user's whole activity summed once
 * (events, page views, and its visits' sums from the visit digest), filed in a grid cell by its
 * span, the unit of time of its first row and the unit of its last (at most UNITS units over the
 * model's time span). A question over [from, to) adds the cells that lie wholly inside the range
 * as they are, reads users one by one only in the cells at its two edges, and leaves to the passes
 * the users partly inside (and those with bot flags other than the question's), as the digests do.
 *
 * Why exact: a user whose span (every event time and every visit start) lies in [from, to) is
 * counted whole, once, by its sums: the same integers as the passes' (below 2^53, so added in any
 * order they are equal). A cell (a, b) with a > unit(from) and b < unit(to) holds only such users;
 * every other user is tested one by one, or is in a cell wholly before or after the range.
 *
 * Over a 30-day question on 30 days of data, that reads the users of the last few hours instead
 * of every user (QUERY_PLANS.md, "The unfiltered summary").
 *
 * The median: `sorted` holds the build-time durations of every visit of the grid's users. The
 * counted durations are (sorted − D) ∪ Y (visit-digest.ts, medianOfParts), where D holds those of
 * every grid user not counted whole (outside, partly inside, or retired since) and Y the visits the
 * pass counts one by one.
 */
export interface SpanGrid {
  /** -1: bots=include; 0: exclude; 1: only. Each bot choice has its own grid. */
  botWant: number;
  t0: number;
  width: number;
  units: number;
  /** Cell (a, b) holds users[cellStart[a * units + b] .. cellStart[a * units + b + 1]). */
  cellStart: Uint32Array;
  users: Uint32Array;
  /** Per cell, FIELDS sums of its (not retired) users. */
  cellSums: Float64Array;
  /** Per model user: its cell, or -1 when not in the grid. */
  cellOf: Int32Array;
  /** Per model user: the first and last time of its rows (+Infinity both when it has none, or is retired). */
  lo: Float64Array;
  hi: Float64Array;
  events: Uint32Array;
  pageViews: Uint32Array;
  /** Users outside the grid whose rows may still count for its bot choice (mixed flags), ascending. */
  others: Uint32Array;
  /** Grid users retired since the build: their durations are in `sorted`, and count nowhere. */
  retired: number[];
  sorted: Float64Array;
  /** Where the users' visit sums and build-time durations come from (retiring never changes them). */
  vd: VisitDigest;
}

/** Units a model's time span is cut into: 65,536 cells of 7 sums, 3.7 MB. */
export const UNITS = 256;

/** The sums each cell holds, in this order. */
const FIELDS = 7;
const [VISITORS, EVENTS, PAGE_VIEWS, VISITS, BOUNCES, DURATION_MS, VISIT_PAGE_VIEWS] = [0, 1, 2, 3, 4, 5, 6];

const grids = new WeakMap<ColumnarModel, Map<number, SpanGrid>>();

/** The grid of `model` for a bot choice (-1, 0, 1), built on first use and then kept with the model. */
export function spanGridOf(
  model: ColumnarModel,
  c: ScanColumns,
  vd: VisitDigest,
  botWant: number,
  pageView: number,
  units = UNITS,
): SpanGrid {
  let byBots = grids.get(model);
  if (byBots === undefined) grids.set(model, (byBots = new Map<number, SpanGrid>()));
  let g = byBots.get(botWant);
  if (g === undefined) byBots.set(botWant, (g = build(c, vd, botWant, pageView, units)));
  return g;
}

/** Keeps `g` as a grid of `model`: built from it elsewhere (a load worker: layers.ts). */
export function adoptSpanGrid(model: ColumnarModel, g: SpanGrid): void {
  let byBots = grids.get(model);
  if (byBots === undefined) grids.set(model, (byBots = new Map<number, SpanGrid>()));
  byBots.set(g.botWant, g);
}

/** Hides user `u` from the grids of `model` (it moved to a newer layer: layers.ts). */
export function retireInSpanGrids(model: ColumnarModel, u: number): void {
  for (const g of grids.get(model)?.values() ?? []) {
    if (g.lo[u] === Infinity) continue; // no rows, or retired already
    g.lo[u] = Infinity;
    g.hi[u] = Infinity;
    const cell = g.cellOf[u];
    if (cell < 0) continue;
    g.retired.push(u);
    const s = g.cellSums;
    const at = cell * FIELDS;
    s[at + VISITORS]--;
    s[at + EVENTS] -= g.events[u];
    s[at + PAGE_VIEWS] -= g.pageViews[u];
    s[at + VISITS] -= g.vd.visits[u];
    s[at + BOUNCES] -= g.vd.bounces[u];
    s[at + DURATION_MS] -= g.vd.durationMs[u];
    s[at + VISIT_PAGE_VIEWS] -= g.vd.pageViews[u];
  }
}

function build(c: ScanColumns, vd: VisitDigest, botWant: number, pageView: number, units: number): SpanGrid {
  const { userEvents, userVisits, ts, isBot, typeCodes, visitStart, visitIsBot } = c;
  const nUsers = userEvents.length - 1;
  const lo = new Float64Array(nUsers).fill(Infinity);
  const hi = new Float64Array(nUsers).fill(Infinity);
  const events = new Uint32Array(nUsers);
  const pageViews = new Uint32Array(nUsers);
  const inGrid = new Uint8Array(nUsers);
  const others: number[] = [];
  let tMin = Infinity;
  let tMax = -Infinity;
  for (let u = 0; u < nUsers; u++) {
    let l = Infinity;
    let h = -Infinity;
    let views = 0;
    let eventBots = 0;
    let visitBots = 0;
    const e0 = userEvents[u];
    const e1 = userEvents[u + 1];
    for (let i = e0; i < e1; i++) {
      const t = ts[i];
      if (t < l) l = t;
      if (t > h) h = t;
      eventBots += isBot[i];
      if (typeCodes[i] === pageView) views++;
    }
    const v0 = userVisits[u];
    const v1 = userVisits[u + 1];
    for (let v = v0; v < v1; v++) {
      const s = visitStart[v];
      if (s < l) l = s;
      if (s > h) h = s;
      visitBots += visitIsBot[v];
    }
    // No rows, or retired before the build (every time +Infinity: layers.ts retire).
    if (l === Infinity) continue;
    lo[u] = l;
    hi[u] = h;
    events[u] = e1 - e0;
    pageViews[u] = views;
    if (l < tMin) tMin = l;
    if (h > tMax) tMax = h;
    const fits = (bots: number, n: number, want: number) => bots === (want === 1 ? n : 0);
    if (botWant < 0 || (fits(eventBots, e1 - e0, botWant) && fits(visitBots, v1 - v0, botWant))) {
      inGrid[u] = 1;
    } else if (!(fits(eventBots, e1 - e0, 1 - botWant) && fits(visitBots, v1 - v0, 1 - botWant))) {
      others.push(u); // some rows of each kind: the passes read it
    } // else: no row the question wants
  }
  const U = units;
  const t0 = tMin === Infinity ? 0 : tMin;
  const width = tMin === Infinity ? 1 : Math.max(1, Math.ceil((tMax - tMin + 1) / U));
  const unit = (t: number) => Math.min(U - 1, Math.floor((t - t0) / width));
  const cellOf = new Int32Array(nUsers).fill(-1);
  const cellStart = new Uint32Array(U * U + 1);
  let nVisits = 0;
  for (let u = 0; u < nUsers; u++) {
    if (inGrid[u] === 0) continue;
    const cell = unit(lo[u]) * U + unit(hi[u]);
    cellOf[u] = cell;
    cellStart[cell + 1]++;
    nVisits += userVisits[u + 1] - userVisits[u];
  }
  for (let k = 0; k < U * U; k++) cellStart[k + 1] += cellStart[k];
  const users = new Uint32Array(cellStart[U * U]);
  const next = cellStart.slice(0, U * U);
  const cellSums = new Float64Array(U * U * FIELDS);
  const sorted = new Float64Array(nVisits);
  let at = 0;
  for (let u = 0; u < nUsers; u++) {
    const cell = cellOf[u];
    if (cell < 0) continue;
    users[next[cell]++] = u;
    const s = cell * FIELDS;
    cellSums[s + VISITORS]++;
    cellSums[s + EVENTS] += events[u];
    cellSums[s + PAGE_VIEWS] += pageViews[u];
    cellSums[s + VISITS] += vd.visits[u];
    cellSums[s + BOUNCES] += vd.bounces[u];
    cellSums[s + DURATION_MS] += vd.durationMs[u];
    cellSums[s + VISIT_PAGE_VIEWS] += vd.pageViews[u];
    sorted.set(vd.dur0.subarray(userVisits[u], userVisits[u + 1]), at);
    at += userVisits[u + 1] - userVisits[u];
  }
  return {
    botWant,
    t0,
    width,
    units: U,
    cellStart,
    users,
    cellSums,
    cellOf,
    lo,
    hi,
    events,
    pageViews,
    others: Uint32Array.from(others),
    retired: [],
    sorted: sorted.sort(),
    vd,
  };
}

/** What countByGrid leaves to the passes: the users to read one by one, and D. */
export interface GridRest {
  /** Users partly inside the range, or outside the grid with rows that may count, ascending. */
  only: Uint32Array;
  /** D (only when the median is wanted): the durations in `sorted` of visits not counted whole, ascending. */
  removed: Float64Array;
}

/**
 * The unfiltered, ungrouped sums over [from, to) of every user counted whole (key 0 and the total
 * of `sums`), and what the passes must still read. Undefined, having added nothing, when the median
 * is wanted and D would exceed `maxRemoved` (a short range: the usual way is then cheaper).
 */
export function countByGrid(
  g: SpanGrid,
  c: ScanColumns,
  p: { from: number; to: number },
  sums: ScanSums,
  median: { maxRemoved: number } | undefined,
): GridRest | undefined {
  const { units: U, t0, width, cellStart, users, cellSums, lo, hi, events, pageViews, vd } = g;
  const { from, to } = p;
  const unit = (t: number) => Math.min(U, Math.max(-1, Math.floor((t - t0) / width)));
  const uF = unit(from);
  const uT = unit(to);
  const whole = new Float64Array(FIELDS);
  const only: number[] = [];
  /** Grid users read one by one and not counted whole, and cells wholly outside the range. */
  const edge: number[] = [];
  const outside: number[] = [];
  for (let a = 0; a < U; a++) {
    for (let b = a; b < U; b++) {
      const cell = a * U + b;
      const j0 = cellStart[cell];
      const j1 = cellStart[cell + 1];
      if (j0 === j1) continue;
      if (a > uF && b < uT) {
        // Every user of the cell lies wholly inside the range.
        for (let f = 0; f < FIELDS; f++) whole[f] += cellSums[cell * FIELDS + f];
      } else if (b < uF || a > uT) {
        outside.push(cell); // every user ends before `from` or starts after `to`
      } else {
        for (let j = j0; j < j1; j++) {
          const u = users[j];
          const l = lo[u];
          if (l === Infinity) continue; // retired: in `g.retired`
          const h = hi[u];
          if (l >= from && h < to) {
            whole[VISITORS]++;
            whole[EVENTS] += events[u];
            whole[PAGE_VIEWS] += pageViews[u];
            whole[VISITS] += vd.visits[u];
            whole[BOUNCES] += vd.bounces[u];
            whole[DURATION_MS] += vd.durationMs[u];
            whole[VISIT_PAGE_VIEWS] += vd.pageViews[u];
          } else {
            edge.push(u);
            if (h >= from && l < to) only.push(u);
          }
        }
      }
    }
  }
  let removed = NONE;
  if (median !== undefined) {
    const nRemoved = g.sorted.length - whole[VISITS];
    if (nRemoved > median.maxRemoved) return undefined;
    removed = new Float64Array(nRemoved);
    let at = 0;
    const copy = (u: number) => {
      const v0 = c.userVisits[u];
      const v1 = c.userVisits[u + 1];
      removed.set(vd.dur0.subarray(v0, v1), at);
      at += v1 - v0;
    };
    for (const u of edge) copy(u);
    for (const u of g.retired) copy(u);
    for (const cell of outside)
      for (let j = cellStart[cell]; j < cellStart[cell + 1]; j++)
        if (lo[users[j]] !== Infinity) copy(users[j]);
    if (at !== nRemoved) throw new Error(`span grid: ${at} durations removed, ${nRemoved} expected`);
    removed.sort();
  }
  for (const u of g.others) if (hi[u] >= from && lo[u] < to) only.push(u);
  // Events and page views go to key 0 only: runSlice sums the keys into the total.
  sums.events[0] += whole[EVENTS];
  sums.pageViews[0] += whole[PAGE_VIEWS];
  const K = sums.keys;
  for (const k of [0, K]) {
    sums.visitors[k] += whole[VISITORS];
    sums.visits[k] += whole[VISITS];
    sums.bounces[k] += whole[BOUNCES];
    sums.durationMs[k] += whole[DURATION_MS];
    sums.visitPageViews[k] += whole[VISIT_PAGE_VIEWS];
  }
  return { only: Uint32Array.from(only).sort(), removed };
}

const NONE = new Float64Array(0);
