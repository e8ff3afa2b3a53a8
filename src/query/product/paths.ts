import type { Column, Dictionary } from '../columnar/dictionary.ts';
import type { ColumnarModel } from '../columnar/model.ts';
import { forEachSequence, type Sequence, type SequenceQuestion } from './sequences.ts';

/**
 * Paths (issue 21): the most common pages (or event types) after, or before, an anchor within
 * the visit. Each visit's node sequence is its selected events of a non-NULL node value, ordered
 * by (time, value, index); every position holding the anchor is one occurrence, and the d values
 * next to it (nearest first; null past the visit's edge) are its path of depth d.
 *
 * Paths are counted per layer on the layer's own codes, as a trie of integer ids (an array for
 * the first level, one Map probe per deeper level and occurrence); only the distinct paths are
 * turned into strings, to be merged across layers by value (their dictionaries differ).
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
  const merged = Array.from({ length: q.depth }, () => new Map<string, PathItem>());
  let anchors = 0;
  for (const model of models) {
    const column = q.by === 'page' ? model.events.dims.page : model.events.dims.event_type;
    const anchor = column.dict.find(q.anchor);
    // A layer that never saw the anchor holds none of its occurrences.
    if (anchor < 0) continue;
    const trie = countPaths(model, column, anchor, q);
    anchors += trie.anchors;
    for (let d = 0; d < q.depth; d++) mergeLevel(merged[d], trie.levels[d], trie.levels, d, column.dict);
  }
  return {
    anchors,
    levels: merged.map((level, d) => {
      const all = [...level.values()].sort(byCountThenPath);
      const items = all.slice(0, q.limit);
      let listed = 0;
      for (const item of items) listed += item.count;
      return { depth: d + 1, items, other: anchors - listed };
    }),
  };
}

/**
 * One level of the trie: path id -> (parent id in the level above, last code, count). The first
 * level's id is the code itself (no parent); deeper ids are given per distinct path, found by
 * `ids` from (parent id * dictionary size + code).
 */
interface Level {
  ids: Map<number, number>;
  parent: number[];
  code: number[];
  count: number[];
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
  // The first level is dense; the deeper ones, sparse.
  const first = new Float64Array(size);
  const levels: Level[] = Array.from({ length: depth }, () => ({
    ids: new Map(),
    parent: [],
    code: [],
    count: [],
  }));
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
      let parent = at >= 0 && at < m ? nodes[at] : 0;
      first[parent]++;
      for (let d = 1; d < depth; d++) {
        at += step;
        const c = at >= 0 && at < m ? nodes[at] : 0;
        const level = levels[d];
        const key = parent * size + c;
        let id = level.ids.get(key);
        if (id === undefined) {
          id = level.count.length;
          level.ids.set(key, id);
          level.parent.push(parent);
          level.code.push(c);
          level.count.push(0);
        }
        level.count[id]++;
        parent = id;
      }
    }
  };
  forEachSequence([model], q, 'visit', visit);
  levels[0] = { ids: new Map(), parent: [], code: Array.from(first, (_, c) => c), count: Array.from(first) };
  return { anchors, levels };
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

function mergeLevel(
  into: Map<string, PathItem>,
  level: Level,
  levels: readonly Level[],
  d: number,
  dict: Dictionary,
): void {
  for (let id = 0; id < level.count.length; id++) {
    if (level.count[id] === 0) continue;
    const path: (string | null)[] = new Array<string | null>(d + 1);
    for (let k = d, at = id; k >= 0; k--) {
      path[k] = dict.value(levels[k].code[at]);
      at = levels[k].parent[at];
    }
    const key = JSON.stringify(path);
    const item = into.get(key);
    if (item === undefined) into.set(key, { path, count: level.count[id] });
    else item.count += level.count[id];
  }
}

/** Count descending, then the path element by element: strings by `<`, null last. */
function byCountThenPath(a: PathItem, b: PathItem): number {
  if (a.count !== b.count) return b.count - a.count;
  for (let k = 0; k < a.path.length; k++) {
    const x = a.path[k];
    const y = b.path[k];
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
