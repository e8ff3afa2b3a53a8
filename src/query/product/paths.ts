import type { Column, Dictionary } from '../columnar/dictionary.ts';
import type { ColumnarModel } from '../columnar/model.ts';
import { PathLevel } from './path-level.ts';
import { eventTest, type SequenceQuestion } from './sequences.ts';
import { topByCount } from './top.ts';

/**
 * Paths (issue 21): the most common pages (or event types) after, or before, an anchor within
 * the visit. Each visit's node sequence is its selected events of a non-NULL node value, ordered
 * by (time, value, index); every position holding the anchor is one occurrence, and the d values
 * next to it (nearest first; null past the visit's edge) are its path of depth d.
 *
 * Paths are counted per layer on the layer's own codes, as a trie of integer ids (an array for
 * the first level, ids of (parent id, code) pairs for the deeper ones: see PathLevel), merged across
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
    layers.push({ dict: column.dict, first: trie.first, deeper: trie.deeper });
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
  first: Float64Array;
  deeper: PathLevel[];
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
  const counts = countsOf(host, d);
  const extras = new Map<string, PathItem>();
  for (let m = 1; m < layers.length; m++) {
    const count = countsOf(layers[m], d);
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
function codesOf({ deeper }: Layer, d: number, id: number, out: Uint32Array): Uint32Array {
  let at = id;
  for (let k = d; k > 0; k--) {
    out[k] = deeper[k - 1].code[at];
    at = deeper[k - 1].parent[at];
  }
  out[0] = at;
  return out;
}

/** The id of `path` in the layer's trie (of level path.length − 1), or -1 when it has none. */
function findPath(layer: Layer, path: readonly (string | null)[]): number {
  let id = -1;
  for (let k = 0; k < path.length; k++) {
    const v = path[k];
    const code = v === null ? 0 : layer.dict.find(v);
    if (code < 0) return -1;
    id = k === 0 ? code : layer.deeper[k - 1].find(id, code);
    if (id < 0) return -1;
  }
  return id;
}

/** The counts of level `d`, by path id. */
function countsOf(layer: Layer, d: number): Float64Array {
  return d === 0 ? layer.first : layer.deeper[d - 1].counts();
}

/**
 * A layer's trie: the first level's id is the code itself (counts dense by code); a deeper
 * level's ids are its distinct (parent id in the level above, code) pairs (see PathLevel).
 */
interface Trie {
  anchors: number;
  first: Float64Array;
  deeper: PathLevel[];
}

function countPaths(model: ColumnarModel, column: Column, anchor: number, q: PathsQuestion): Trie {
  const { codes, dict } = column;
  const { ts, isBot, visit, count } = model.events;
  const passes = eventTest(model, q.filters);
  const botWant = q.bots === 'exclude' ? 0 : q.bots === 'only' ? 1 : -1;
  const { from, to } = q;
  // Written so that a hidden user's +Infinity (sequences.ts) fails even with `to` = +Infinity.
  const selected = (i: number): boolean =>
    ts[i] >= from && ts[i] < to && (botWant < 0 || isBot[i] === botWant) && passes(i);
  const depth = q.depth;
  const step = q.direction === 'next' ? 1 : -1;
  const first = new Float64Array(dict.size);
  const deeper = Array.from({ length: depth - 1 }, () => new PathLevel());
  let events = new Uint32Array(256);
  let nodes = new Uint32Array(256);
  let rank: Uint32Array | undefined;
  let anchors = 0;
  // TRICKY: only visits holding a selected anchor count, and a visit's events are contiguous
  // and in time order (model.ts): so the anchor's column is scanned alone, and the visit around
  // each first selected anchor read whole, rather than every visit handed over one by one
  // (forEachSequence: a call and a copy per visit, 3 M of them at 10 M events).
  for (let i = 0; i < count; i++) {
    if (codes[i] !== anchor) continue;
    const v = visit[i];
    if (v < 0 || !selected(i)) continue;
    let lo = i;
    while (lo > 0 && visit[lo - 1] === v) lo--;
    let hi = i + 1;
    while (hi < count && visit[hi] === v) hi++;
    if (events.length < hi - lo) {
      events = new Uint32Array(2 * (hi - lo));
      nodes = new Uint32Array(2 * (hi - lo));
    }
    let m = 0;
    let last = -Infinity;
    let inOrder = true;
    let ties = false;
    for (let k = lo; k < hi; k++) {
      if (codes[k] === 0 || !selected(k)) continue;
      const t = ts[k];
      if (t < last) inOrder = false;
      else if (t === last) ties = true;
      last = t;
      events[m++] = k;
    }
    // The model keeps a visit's events by time; should one ever not, the contract's order holds.
    if (!inOrder) events.subarray(0, m).sort((a, b) => ts[a] - ts[b] || a - b);
    for (let k = 0; k < m; k++) nodes[k] = codes[events[k]];
    // TRICKY: nodes of equal time go by value (the contract's tie); most visits have none.
    if (ties || !inOrder) rank = orderTies(nodes, events, m, ts, rank, dict);
    for (let k = 0; k < m; k++) {
      if (nodes[k] !== anchor) continue;
      anchors++;
      let at = k + step;
      // Past the visit's edge the path reads null (code 0), and stays there.
      let id = at >= 0 && at < m ? nodes[at] : 0;
      first[id]++;
      for (let d = 0; d + 1 < depth; d++) {
        at += step;
        id = deeper[d].add(id, at >= 0 && at < m ? nodes[at] : 0);
      }
    }
    i = hi - 1;
  }
  return { anchors, first, deeper };
}

/**
 * Sorts each run of equal times among the visit's nodes by value, through the codes' ranks
 * (made on the first tie met, then kept with the dictionary). `nodes` holds the codes of the
 * events `events[0, n)`, in time order. Returns the ranks, if made.
 */
function orderTies(
  nodes: Uint32Array,
  events: Uint32Array,
  n: number,
  ts: Float64Array,
  rank: Uint32Array | undefined,
  dict: Dictionary,
): Uint32Array | undefined {
  let runStart = 0;
  for (let k = 1; k <= n; k++) {
    if (k < n && ts[events[k]] === ts[events[runStart]]) continue;
    if (k - runStart > 1) {
      const r = (rank ??= rankOf(dict));
      nodes.subarray(runStart, k).sort((a, b) => r[a] - r[b]);
    }
    runStart = k;
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
