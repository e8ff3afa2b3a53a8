/**
 * The first `limit` candidates in (count descending, then `compare`) order, without sorting them
 * all (issue 21: a paths level or a funnel breakdown may hold 500,000 distinct items, of which
 * ten are shown). The `limit`-th largest count is found on numbers alone; `compare`, which may
 * build strings, runs only on the candidates of that very count and on the fewer above it.
 */
export function topByCount(
  ids: ArrayLike<number>,
  countOf: (id: number) => number,
  compare: (a: number, b: number) => number,
  limit: number,
): number[] {
  const order = (a: number, b: number): number => countOf(b) - countOf(a) || compare(a, b);
  if (limit <= 0) return [];
  if (ids.length <= limit) return Array.from(ids).sort(order);
  const threshold = nthLargest(ids, countOf, limit);
  const above: number[] = [];
  // The best `need` of the tied candidates, kept in order by insertion.
  const tied: number[] = [];
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k];
    const c = countOf(id);
    if (c > threshold) above.push(id);
  }
  const need = limit - above.length;
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k];
    if (countOf(id) !== threshold) continue;
    if (tied.length === need && compare(id, tied[need - 1]) >= 0) continue;
    let at = tied.length === need ? need - 1 : tied.length;
    while (at > 0 && compare(id, tied[at - 1]) < 0) at--;
    if (tied.length === need) tied.pop();
    tied.splice(at, 0, id);
  }
  return above.sort(order).concat(tied);
}

/** The `n`-th largest count (1-based, n <= ids.length), by a min-heap of the n largest. */
function nthLargest(ids: ArrayLike<number>, countOf: (id: number) => number, n: number): number {
  const heap = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    // Sift up.
    let at = k;
    const c = countOf(ids[k]);
    while (at > 0 && heap[(at - 1) >> 1] > c) {
      heap[at] = heap[(at - 1) >> 1];
      at = (at - 1) >> 1;
    }
    heap[at] = c;
  }
  for (let k = n; k < ids.length; k++) {
    const c = countOf(ids[k]);
    if (c <= heap[0]) continue;
    // Replace the root and sift down.
    let at = 0;
    for (;;) {
      const l = 2 * at + 1;
      if (l >= n) break;
      const child = l + 1 < n && heap[l + 1] < heap[l] ? l + 1 : l;
      if (heap[child] >= c) break;
      heap[at] = heap[child];
      at = child;
    }
    heap[at] = c;
  }
  return heap[0];
}
