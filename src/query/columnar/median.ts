import { bucketOf } from './visit-pass.ts';
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Below this many values, quickselect alone; above, a radix pass first (see median). */
const RADIX_FROM = 4096;

/**
 * The median of `xs[0..n)` as percentile_cont(0.5) defines it (the mean of the two middle values
 * when n is even); null when n is 0. Reorders `xs`. Made for durations (≥ 0); with a negative
 * value (or -0) it falls back to quickselect alone.
 *
 * TRICKY: the bit patterns of non-negative doubles sort as the numbers do, so one counting pass
 * over the top 16 bits (sign, exponent, 4 mantissa bits) finds the bin of each middle value; only
 * that bin's values (a few percent of them) go to quickselect. Quickselect over millions of
 * durations, with their many ties at 0, cost 45–100 ms at 3 M visits; the two passes, a fraction.
 */
export function median(xs: Float64Array, n: number): number | null {
  if (n === 0) return null;
  if (n >= RADIX_FROM && LITTLE_ENDIAN) {
    const m = radixMedian(xs, n);
    if (m !== undefined) return m;
  }
  return quickMedian(xs, n);
}

/** The median by one counting pass and a quickselect within the middle bin; undefined when a value is negative. */
function radixMedian(xs: Float64Array, n: number): number | undefined {
  const words = new Uint32Array(xs.buffer, xs.byteOffset, 2 * n);
  const bins = new Uint32Array(0x10000);
  for (let i = 1; i < 2 * n; i += 2) bins[words[i] >>> 16]++;
  if (bins.subarray(0x8000).some((c) => c > 0)) return undefined;
  const lowerRank = (n - 1) >>> 1;
  const upperRank = n >>> 1;
  // The bins holding both middle ranks (the same one unless the middle straddles two).
  let bin = 0;
  let before = 0;
  while (before + bins[bin] <= lowerRank) before += bins[bin++];
  let last = bin;
  while (before + sumBins(bins, bin, last) <= upperRank) last++;
  const inBins = new Float64Array(sumBins(bins, bin, last));
  let at = 0;
  for (let i = 0; i < n; i++) {
    const b = words[2 * i + 1] >>> 16;
    if (b >= bin && b <= last) inBins[at++] = xs[i];
  }
  return quickMedianOfRanks(inBins, at, lowerRank - before, upperRank - before);
}

function sumBins(bins: Uint32Array, from: number, to: number): number {
  let sum = 0;
  for (let b = from; b <= to; b++) sum += bins[b];
  return sum;
}

/** The mean of the values of ranks lo and hi (lo ≤ hi ≤ lo + 1) of xs[0..n). */
function quickMedianOfRanks(xs: Float64Array, n: number, lo: number, hi: number): number {
  select(xs, 0, n - 1, hi);
  if (lo === hi) return xs[hi];
  // After selecting hi, every value before it is ≤ xs[hi]: rank lo is their maximum.
  let lower = xs[0];
  for (let i = 1; i < hi; i++) if (xs[i] > lower) lower = xs[i];
  return (lower + xs[hi]) / 2;
}

function quickMedian(xs: Float64Array, n: number): number {
  return quickMedianOfRanks(xs, n, (n - 1) >>> 1, n >>> 1);
}

/** Puts the k-th smallest of xs[lo..hi] at k, smaller-or-equal values before it, larger-or-equal after. */
function select(xs: Float64Array, lo: number, hi: number, k: number): void {
  while (hi > lo) {
    // Median of three as pivot, so sorted or constant inputs stay linear on average.
    const mid = (lo + hi) >>> 1;
    const pivot = medianOf3(xs[lo], xs[mid], xs[hi]);
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (xs[i] < pivot) i++;
      while (xs[j] > pivot) j--;
      if (i <= j) {
        const t = xs[i];
        xs[i] = xs[j];
        xs[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

function medianOf3(a: number, b: number, c: number): number {
  return a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
}

/**
 * median() of the multiset (all − removed) ∪ extra, each ascending, `removed` a sub-multiset of
 * `all`: exactly the same value, without reading `all` (visit-digest.ts). O(log² n).
 */
export function medianOfParts(all: Float64Array, removed: Float64Array, extra: Float64Array): number | null {
  const n = all.length - removed.length + extra.length;
  if (n === 0) return null;
  const lowerRank = (n - 1) >>> 1;
  const upperRank = n >>> 1;
  const upper = rankOfParts(all, removed, extra, upperRank);
  if (lowerRank === upperRank) return upper;
  return (rankOfParts(all, removed, extra, lowerRank) + upper) / 2;
}

/**
 * The value of rank k (0-based) of (all − removed) ∪ extra.
 * TRICKY: the count of values ≤ v in that multiset is atMost(all) − atMost(removed) + atMost(extra),
 * for any v, since removed ⊆ all. The value of rank k is the smallest v of the multiset whose
 * count reaches k + 1; it is a value of `all` or of `extra`, and no value of either below it
 * reaches k + 1. So the smaller of the two smallest values (of `all`, of `extra`) reaching k + 1
 * is it, even when the one found in `all` is itself removed (then it is not the smaller).
 */
function rankOfParts(all: Float64Array, removed: Float64Array, extra: Float64Array, k: number): number {
  const count = (v: number) => atMost(all, v) - atMost(removed, v) + atMost(extra, v);
  return Math.min(firstReaching(all, count, k + 1), firstReaching(extra, count, k + 1));
}

/** The smallest xs[i] with count(xs[i]) ≥ want (count grows with the value); +Infinity if none. */
function firstReaching(xs: Float64Array, count: (v: number) => number, want: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (count(xs[mid]) >= want) hi = mid;
    else lo = mid + 1;
  }
  return lo < xs.length ? xs[lo] : Infinity;
}

/**
 * How many of xs (ascending) are ≤ v: visit-pass.ts's width_bucket over bucket starts. A call,
 * not an alias: the modules import each other, and a top-level alias could run before it exists.
 */
function atMost(xs: Float64Array, v: number): number {
  return bucketOf(xs, v);
}
