import type { Column, Dictionary } from '../columnar/dictionary.ts';
import type { ColumnarModel } from '../columnar/model.ts';
import { u32 } from '../columnar/growable.ts';
import { forEachSequence, type Sequence, type SequenceQuestion } from './sequences.ts';
import { topByCount } from './top.ts';

/**
 * Paths (issue 21): the most common pages (or event types) after, or before, an anchor within
 * the visit. Each visit's node sequence is its selected events of a non-NULL node value, ordered
 * by (time, value, index); every position holding the anchor is one occurrence, and the d values
 * next to it (nearest first; null past the visit's edge) are its path of depth d.
 *
 * Paths are counted per layer on the layer's own codes, as a trie of integer ids (an array for
 * the first level, ids by (parent, code) key for the deeper ones: see idsOf), merged across
 * layers by value (their dictionaries differ) and cut to the top on integers: only the listed
 * paths, and the few a delta layer holds, are turned into strings (see topOfLevel).
 */

export interface PathsQuestion extends SequenceQuestion {
  by: 'page' | 'event_type';
  /** A page (by page) or an event type (by event_type). */
  anchor: string;
  direction: 'next' | 'previous';
  /** 1..3 */
  depth: number;
  /** Items per level, 1..100. */
  limit: number;
}

export interface PathItem {
  path: (string | null)[];
  count: number;
}

export interface PathsAnswer {
  anchors: number;
  levels: { depth: number; items: PathItem[]; other: number }[];
}

/** The paths around `q.anchor` in the visits of `models` (a read model's layers, base first). */
export function paths(models: readonly ColumnarModel[], q: PathsQuestion): PathsAnswer {
  const layers: Layer[] = [];
  let anchors = 0;
  for (const model of models) {
    const column = q.by === 'page' ? model.events.dims.page : model.events.dims.event_type;
    const anchor = column.dict.find(q.anchor);
    // A layer that never saw the anchor holds none of its occurrences.
    if (anchor < 0) continue;
    const trie = countPaths(model, column, anchor, q);
    anchors += trie.anchors;
    layers.push({ dict: column.dict, levels: trie.levels });
  }
  return {
    anchors,
    levels: Array.from({ length: q.depth }, (_, d) => {
      const items = layers.length === 0 ? [] : topOfLevel(layers, d, q.limit);
      let listed = 0;
      for (const item of items) listed += item.count;
      return { depth: d + 1, items, other: anchors - listed };
    }),
  };
}

interface Layer {
  dict: Dictionary;
  levels: Level[];
}

/**
 * The first `limit` paths of level `d` over the layers. The first layer (the base, the largest)
 * is the host: the others' paths, few as deltas are small, are turned into strings and found in
 * the host's trie by value, their counts added to the host's; the few the host never saw are
 * kept aside. Only then are the top paths picked, on integer counts, and only they (and the
 * candidates tied at the cut) are read as strings.
 */
function topOfLevel(layers: readonly Layer[], d: number, limit: number): PathItem[] {
  const host = layers[0];
  const counts = host.levels[d].count;
  const extras = new Map<string, PathItem>();
  for (let m = 1; m < layers.length; m++) {
    const count = layers[m].levels[d].count;
    for (let id = 0; id < count.length; id++) {
      if (count[id] === 0) continue;
      const path = pathOf(layers[m], d, id);
      const at = findPath(host, path);
      if (at >= 0) {
        counts[at] += count[id];
        continue;
      }
      const key = JSON.stringify(path);
      const item = extras.get(key);
      if (item === undefined) extras.set(key, { path, count: count[id] });
      else item.count += count[id];
    }
  }
  // Candidates: the host's ids, then the extras numbered after them.
  const extra = [...extras.values()];
  let n = 0;
  for (let id = 0; id < counts.length; id++) if (counts[id] > 0) n++;
  const ids = new Uint32Array(n + extra.length);
  n = 0;
  for (let id = 0; id < counts.length; id++) if (counts[id] > 0) ids[n++] = id;
  for (let e = 0; e < extra.length; e++) ids[n++] = counts.length + e;
  const pathAt = (id: number): (string | null)[] =>
    id < counts.length ? pathOf(host, d, id) : extra[id - counts.length].path;
  // TRICKY: at the cut, ties may be all the paths (500k paths seen once each): host paths are
  // compared on their codes, no path built, strings read only where the codes differ.
  const ca = new Uint32Array(d + 1);
  const cb = new Uint32Array(d + 1);
  const compare = (a: number, b: number): number => {
    if (a >= counts.length || b >= counts.length) return comparePaths(pathAt(a), pathAt(b));
    codesOf(host, d, a, ca);
    codesOf(host, d, b, cb);
    for (let k = 0; k <= d; k++) {
      if (ca[k] !== cb[k]) return comparePaths([host.dict.value(ca[k])], [host.dict.value(cb[k])]);
    }
    return 0;
  };
  const top = topByCount(
    ids,
    (id) => (id < counts.length ? counts[id] : extra[id - counts.length].count),
    compare,
    limit,
  );
  return top.map((id) =>
    id < counts.length ? { path: pathAt(id), count: counts[id] } : extra[id - counts.length],
  );
}

/** The values of path `id` of level `d` in the layer's trie, nearest the anchor first. */
function pathOf(layer: Layer, d: number, id: number): (string | null)[] {
  const codes = codesOf(layer, d, id, new Uint32Array(d + 1));
  return Array.from(codes, (c) => layer.dict.value(c));
}

/** The codes of path `id` of level `d`, into `out`. */
function codesOf({ dict, levels }: Layer, d: number, id: number, out: Uint32Array): Uint32Array {
  const size = dict.size;
  let at = id;
  for (let k = d; k > 0; k--) {
    const key = levels[k].keys[at];
    out[k] = key % size;
    at = Math.floor(key / size);
  }
  out[0] = at;
  return out;
}

/** The id of `path` in the layer's trie (of level path.length − 1), or -1 when it has none. */
function findPath(layer: Layer, path: readonly (string | null)[]): number {
  const size = layer.dict.size;
  let id = -1;
  for (let k = 0; k < path.length; k++) {
    const v = path[k];
    const code = v === null ? 0 : layer.dict.find(v);
    if (code < 0) return -1;
    if (k === 0) id = code;
    else {
      id = search(layer.levels[k].keys, id * size + code);
      if (id < 0) return -1;
    }
  }
  return id;
}

/**
 * One level of the trie: per path id, its count. The first level's id is the code itself
 * (counts dense by code). A deeper level's ids index `keys`, its distinct (parent id in the level
 * above * dictionary size + code), ascending: the key holds the parent and the code, and a path
 * is found by binary search.
 */
interface Level {
  keys: Float64Array;
  count: Float64Array;
}

interface Trie {
  anchors: number;
  levels: Level[];
}

function countPaths(model: ColumnarModel, column: Column, anchor: number, q: PathsQuestion): Trie {
  const { codes, dict } = column;
  const { ts } = model.events;
  // Ids are fewer than the occurrences and the size at most the events, so a key (parent id *
  // size + code) stays an exact integer, below 2^53, for up to ~9e7 events in a layer.
  const size = dict.size;
  const depth = q.depth;
  const step = q.direction === 'next' ? 1 : -1;
  const first = new Float64Array(size);
  // Deeper levels: each occurrence's code at each distance, made into ids once all are known.
  const near = Array.from({ length: depth }, () => u32());
  let nodes = new Uint32Array(256);
  let rank: Uint32Array | undefined;
  let anchors = 0;

  const visit = (seq: Sequence): void => {
    const { events, n } = seq;
    if (nodes.length < n) nodes = new Uint32Array(Math.max(n, 2 * nodes.length));
    let m = 0;
    let seen = false;
    for (let k = 0; k < n; k++) {
      const c = codes[events[k]];
      if (c === 0) continue;
      nodes[m++] = c;
      if (c === anchor) seen = true;
    }
    if (!seen) return;
    // TRICKY: the sequence comes in (time, index) order; nodes of equal time go by value (the
    // contract's tie), which only matters here, in a visit with an anchor (see orderTies).
    rank = orderTies(nodes, events, n, codes, ts, rank, dict);
    for (let i = 0; i < m; i++) {
      if (nodes[i] !== anchor) continue;
      anchors++;
      let at = i + step;
      // Past the visit's edge the path reads null (code 0), and stays there.
      const c = at >= 0 && at < m ? nodes[at] : 0;
      first[c]++;
      if (depth === 1) continue;
      near[0].push(c);
      for (let d = 1; d < depth; d++) {
        at += step;
        near[d].push(at >= 0 && at < m ? nodes[at] : 0);
      }
    }
  };
  forEachSequence([model], q, 'visit', visit);
  const levels: Level[] = [{ keys: new Float64Array(0), count: first }];
  let parents: Uint32Array = near[0].view();
  for (let d = 1; d < depth; d++) {
    const codesAt = near[d].view();
    const all = new Float64Array(anchors);
    for (let o = 0; o < anchors; o++) all[o] = parents[o] * size + codesAt[o];
    const { keys, ids } = idsOf(all);
    const count = new Float64Array(keys.length);
    for (let o = 0; o < anchors; o++) count[ids[o]]++;
    levels.push({ keys, count });
    parents = ids;
  }
  return { anchors, levels };
}

/** Up to this many distinct paths in a level, a Map finds the ids; past it, a sort. */
const FEW_PATHS = 4096;

/**
 * The distinct values of `all` (ascending) and the index of each element's among them.
 * TRICKY: a Map probe per occurrence is cheapest when the paths are few (an anchor of 250k
 * occurrences and 64 paths); at 500k distinct paths its inserts cost ~0.4 s per level, where a
 * typed sort and a binary search per occurrence cost a fraction of that.
 */
function idsOf(all: Float64Array): { keys: Float64Array; ids: Uint32Array } {
  const ids = new Uint32Array(all.length);
  // Ids in order of first sight, then renumbered in key order.
  const few = new Map<number, number>();
  let o = 0;
  for (; o < all.length; o++) {
    let id = few.get(all[o]);
    if (id === undefined) {
      if (few.size === FEW_PATHS) break;
      few.set(all[o], (id = few.size));
    }
    ids[o] = id;
  }
  if (o === all.length) {
    const seen = Float64Array.from(few.keys());
    const keys = seen.slice().sort();
    const renumber = new Uint32Array(seen.length);
    for (let id = 0; id < keys.length; id++) renumber[few.get(keys[id])!] = id;
    for (let k = 0; k < ids.length; k++) ids[k] = renumber[ids[k]];
    return { keys, ids };
  }
  const sorted = all.slice().sort();
  let distinct = 0;
  for (let k = 0; k < sorted.length; k++) {
    if (k === 0 || sorted[k] !== sorted[k - 1]) sorted[distinct++] = sorted[k];
  }
  const keys = sorted.slice(0, distinct);
  for (let k = 0; k < all.length; k++) ids[k] = search(keys, all[k]);
  return { keys, ids };
}

/** The index of `key` in the ascending `keys`, or -1. */
function search(keys: Float64Array, key: number): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo < keys.length && keys[lo] === key ? lo : -1;
}

/**
 * Sorts each run of equal times among the visit's nodes by value, through the codes' ranks
 * (made on the first tie met, then kept with the dictionary). `nodes` holds the codes of the
 * non-NULL events of `events[0, n)`, in order. Returns the ranks, if made.
 */
function orderTies(
  nodes: Uint32Array,
  events: Uint32Array,
  n: number,
  codes: Column['codes'],
  ts: Float64Array,
  rank: Uint32Array | undefined,
  dict: Dictionary,
): Uint32Array | undefined {
  let j = 0;
  let runStart = 0;
  let runTime = NaN;
  for (let k = 0; k <= n; k++) {
    if (k < n && codes[events[k]] === 0) continue;
    const t = k < n ? ts[events[k]] : NaN;
    if (t === runTime) {
      j++;
      continue;
    }
    if (j - runStart > 1) {
      const r = (rank ??= rankOf(dict));
      nodes.subarray(runStart, j).sort((a, b) => r[a] - r[b]);
    }
    runStart = j;
    runTime = t;
    j++;
  }
  return rank;
}

/** Paths element by element: strings by `<`, null last. */
function comparePaths(a: readonly (string | null)[], b: readonly (string | null)[]): number {
  for (let k = 0; k < a.length; k++) {
    const x = a[k];
    const y = b[k];
    if (x === y) continue;
    if (x === null) return 1;
    if (y === null) return -1;
    return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * Each code's rank among the dictionary's values sorted by `<` (code 0, NULL, ranks 0 and takes
 * no part): events of equal time order by value, so that ties read the same in every layer.
 * A built model's dictionaries no longer change, so a rank serves every question after the
 * first; the size check guards a dictionary that grew all the same.
 */
const ranks = new WeakMap<Dictionary, Uint32Array>();

function rankOf(dict: Dictionary): Uint32Array {
  const size = dict.size;
  const cached = ranks.get(dict);
  if (cached !== undefined && cached.length === size) return cached;
  const order = Array.from({ length: size - 1 }, (_, k) => k + 1);
  const values = order.map((c) => dict.value(c)!);
  order.sort((a, b) => (values[a - 1] < values[b - 1] ? -1 : values[a - 1] > values[b - 1] ? 1 : 0));
  const rank = new Uint32Array(size);
  for (let r = 0; r < order.length; r++) rank[order[r]] = r + 1;
  ranks.set(dict, rank);
  return rank;
}
