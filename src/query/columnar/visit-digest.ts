import type { ColumnarModel } from './model.ts';
import type { ScanColumns, ScanSums } from './scan.ts';

/**
 * A user's visits summed once, for the unfiltered summary: per user, its visits, bounces, sum of
 * rounded durations and visit page views, the first and last visit start, and its visits' bot
 * flags; plus every visit's duration as of the build (`dur0`) and all of them sorted (`sorted`).
 *
 * A user whose visit starts all lie in the range, with the bots wanted, adds its totals instead of
 * its visits: over 30 days of data that is almost every user. The sums are the visits' own,
 * added in another order: integers below 2^53, so exactly equal. The median needs the durations
 * of the counted visits, M: every visit of the users so added, plus the visits counted one by one
 * of the others (Y). As multisets M = (sorted − D) ∪ Y, where D holds the build-time durations of
 * every visit of every other user still in `sorted`; the median is then found by binary search
 * (medianOfParts) without reading the millions of visits of M.
 */
export interface VisitDigest {
  visits: Uint32Array;
  bounces: Uint32Array;
  durationMs: Float64Array;
  pageViews: Float64Array;
  /** The user's first and last visit start (+Infinity both when it has none, or is retired). */
  min: Float64Array;
  max: Float64Array;
  /** 0: every visit human; 1: every visit a bot's; 2: both. */
  bot: Uint8Array;
  /** 1: the user's visits are in `sorted` (it had visits and was not retired at the build). */
  inSorted: Uint8Array;
  /** Each visit's duration at the build (retire never changes it). */
  dur0: Float64Array;
  /** The durations of every visit of the users in `sorted`, ascending. */
  sorted: Float64Array;
}

const MIXED = 2;
const digests = new WeakMap<ColumnarModel, VisitDigest>();

/** The visit digest of `model`, built on first use and then kept with the model. */
export function visitDigestOf(model: ColumnarModel, c: ScanColumns): VisitDigest {
  let d = digests.get(model);
  if (d === undefined) digests.set(model, (d = build(c)));
  return d;
}

/** Keeps `d` as the visit digest of `model`: built from it elsewhere (a load worker: layers.ts). */
export function adoptVisitDigest(model: ColumnarModel, d: VisitDigest): void {
  digests.set(model, d);
}

/** Hides user `u` from the visit digest of `model` (it moved to a newer layer: layers.ts). */
export function retireInVisitDigest(model: ColumnarModel, u: number): void {
  const d = digests.get(model);
  if (d === undefined) return;
  d.min[u] = Infinity;
  d.max[u] = Infinity;
}

function build(c: ScanColumns): VisitDigest {
  const { userVisits, visitStart: start, visitEnd: end, visitEvents, visitPageViews, visitIsBot } = c;
  const nUsers = userVisits.length - 1;
  const d: VisitDigest = {
    visits: new Uint32Array(nUsers),
    bounces: new Uint32Array(nUsers),
    durationMs: new Float64Array(nUsers),
    pageViews: new Float64Array(nUsers),
    min: new Float64Array(nUsers).fill(Infinity),
    max: new Float64Array(nUsers).fill(Infinity),
    bot: new Uint8Array(nUsers),
    inSorted: new Uint8Array(nUsers),
    dur0: new Float64Array(start.length),
    sorted: new Float64Array(0),
  };
  let nSorted = 0;
  for (let u = 0; u < nUsers; u++) {
    const v0 = userVisits[u];
    const v1 = userVisits[u + 1];
    // A user retired before the build (layers.ts retire: every visit starts at +Infinity).
    if (v1 === v0 || start[v0] === Infinity) continue;
    let lo = Infinity;
    let hi = -Infinity;
    let bots = 0;
    let bounces = 0;
    let durationMs = 0;
    let pageViews = 0;
    for (let v = v0; v < v1; v++) {
      const s = start[v];
      if (s < lo) lo = s;
      if (s > hi) hi = s;
      bots += visitIsBot[v];
      const n = visitPageViews[v];
      // As addVisit (visit-pass.ts) counts a visit.
      if (visitEvents[v] === 1 && n === 1) bounces++;
      const dur = end[v] - s;
      durationMs += Math.round(dur);
      pageViews += n;
      d.dur0[v] = dur;
    }
    const n = v1 - v0;
    d.visits[u] = n;
    d.bounces[u] = bounces;
    d.durationMs[u] = durationMs;
    d.pageViews[u] = pageViews;
    d.min[u] = lo;
    d.max[u] = hi;
    d.bot[u] = bots === 0 ? 0 : bots === n ? 1 : MIXED;
    d.inSorted[u] = 1;
    nSorted += n;
  }
  const sorted = new Float64Array(nSorted);
  let at = 0;
  for (let u = 0; u < nUsers; u++) {
    if (d.inSorted[u] === 0) continue;
    sorted.set(d.dur0.subarray(userVisits[u], userVisits[u + 1]), at);
    at += userVisits[u + 1] - userVisits[u];
  }
  d.sorted = sorted.sort();
  return d;
}

/** What countVisitsByDigest leaves to the visit pass: users to read one by one, and D. */
export interface VisitDigestRest {
  /** The users the digest did not answer whose visits may count, ascending. */
  only: Uint32Array;
  /** D: the build-time durations of every visit of every user not answered, ascending. */
  removed: Float64Array;
}

/**
 * Visits, bounces, durations and visit page views (key 0 and total) of the users [u0, u1), with
 * no filter of any kind and no grouping, from the digest where a user is wholly in range with the
 * bots wanted. Returns the rest for the visit pass; or undefined, having added nothing, when the
 * median is wanted and D would exceed `maxRemoved`: then the median is cheaper the usual way.
 */
export function countVisitsByDigest(
  d: VisitDigest,
  c: ScanColumns,
  p: { u0: number; u1: number; from: number; to: number; botWant: number },
  sums: ScanSums,
  maxRemoved: number,
): VisitDigestRest | undefined {
  const { visits, bounces, durationMs, pageViews, min, max, bot, inSorted } = d;
  const { from, to, botWant } = p;
  const only: number[] = [];
  const dropped: number[] = [];
  let nRemoved = 0;
  let nVisits = 0;
  let nBounces = 0;
  let ms = 0;
  let views = 0;
  for (let u = p.u0; u < p.u1; u++) {
    const lo = min[u];
    const hi = max[u];
    const b = bot[u];
    if (lo >= from && hi < to && (botWant < 0 || b === botWant)) {
      nVisits += visits[u];
      nBounces += bounces[u];
      ms += durationMs[u];
      views += pageViews[u];
      continue;
    }
    if (inSorted[u] === 1) {
      dropped.push(u);
      nRemoved += c.userVisits[u + 1] - c.userVisits[u];
      if (nRemoved > maxRemoved) return undefined;
    }
    if (hi < from || lo >= to) continue;
    if (botWant < 0 || b === botWant || b === MIXED) only.push(u);
  }
  const K = sums.keys;
  for (const k of [0, K]) {
    sums.visits[k] += nVisits;
    sums.bounces[k] += nBounces;
    sums.durationMs[k] += ms;
    sums.visitPageViews[k] += views;
  }
  const removed = new Float64Array(nRemoved);
  let at = 0;
  for (const u of dropped) {
    const v0 = c.userVisits[u];
    const v1 = c.userVisits[u + 1];
    removed.set(d.dur0.subarray(v0, v1), at);
    at += v1 - v0;
  }
  return { only: Uint32Array.from(only), removed: removed.sort() };
}
