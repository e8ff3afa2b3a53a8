/**
 * The median of `xs[0..n)` as percentile_cont(0.5) defines it (the mean of the two middle values
 * when n is even); null when n is 0. Reorders `xs` (quickselect: linear on average, no sort).
 */
export function median(xs: Float64Array, n: number): number | null {
  if (n === 0) return null;
  const k = n >>> 1;
  select(xs, 0, n - 1, k);
  if (n % 2 === 1) return xs[k];
  // After selecting k, every value before k is ≤ xs[k]: the lower middle is their maximum.
  let lower = xs[0];
  for (let i = 1; i < k; i++) if (xs[i] > lower) lower = xs[i];
  return (lower + xs[k]) / 2;
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
