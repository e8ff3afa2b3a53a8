import type { Bots } from '../../store/analytics-store.ts';
import type { Filter } from '../filters.ts';
import { compileFilters } from '../columnar/compile-filters.ts';
import type { ColumnarModel } from '../columnar/model.ts';

/**
 * The events of each user (or each visit) in time order: what funnels, retention and paths read
 * (issue 21). They walk the read model's layers (src/query/columnar/layers.ts): a user lives in one
 * layer only, its newest, and is hidden in the older ones with times of +Infinity, which the range
 * test below rejects; so each user is met once, with its current rows.
 */

export type SequenceUnit = 'user' | 'visit';

/** Which events take part: [from, to) in epoch ms (from may be -Infinity), by their own bot flag. */
export interface SequenceQuestion {
  from: number;
  to: number;
  bots: Bots;
  /** The question's filters (src/query/filters.ts): visit-level ones are tested on the event's visit. */
  filters: readonly Filter[];
}

/** One user's (or visit's) events. Its arrays are reused for the next one: copy what you keep. */
export interface Sequence {
  model: ColumnarModel;
  /** The user's code in `model.users` (its id: `model.users.value(user)`). */
  user: number;
  /** The visit's index in `model.visits` (unit 'visit'); -1 for a user. */
  visit: number;
  n: number;
  /**
   * Event indexes into `model.events`, [0, n): by time, then by `tie` (ascending), then by index.
   * Events of equal time and tie are interchangeable for the caller by its own choice of tie.
   */
  events: Uint32Array;
}

/** A test of one event (by its index in the model's events). */
export type EventTest = (event: number) => boolean;

/**
 * The test of `filters` on one event of `model`: event dimensions and properties on the event,
 * visit dimensions on its visit (an event of no visit sees NULL there), as the scan engine reads
 * them (src/query/columnar/compile-filters.ts). Compiled per model, as dictionaries are per layer.
 */
export function eventTest(model: ColumnarModel, filters: readonly Filter[]): EventTest {
  if (filters.length === 0) return () => true;
  const c = compileFilters(model, filters);
  if (c.empty) return () => false;
  const visitOf = model.events.visit;
  return (i) => {
    for (const f of c.events) if (f.pass[f.codes[i]] === 0) return false;
    if (c.visits.length === 0) return true;
    const v = visitOf[i];
    if (v < 0) return c.noVisitPasses;
    for (const f of c.visits) if (f.pass[f.codes[v]] === 0) return false;
    return true;
  };
}

export interface SequenceOptions {
  /** Per model, the order of events of equal time (ascending); default: their index. */
  tie?: (model: ColumnarModel) => (event: number) => number;
}

/**
 * Calls `fn` once per user (unit 'user') or per visit (unit 'visit') of `models` with at least one
 * selected event, in model order. In unit 'visit', events of no visit take no part.
 */
export function forEachSequence(
  models: readonly ColumnarModel[],
  q: SequenceQuestion,
  unit: SequenceUnit,
  fn: (seq: Sequence) => void,
  opts: SequenceOptions = {},
): void {
  let buffer = new Uint32Array(1024);
  const orderer = new Orderer();
  const botWant = q.bots === 'exclude' ? 0 : q.bots === 'only' ? 1 : -1;
  for (const model of models) {
    const passes = eventTest(model, q.filters);
    const tie = opts.tie?.(model);
    const { ts, isBot, visit } = model.events;
    const { userEvents } = model;
    const seq: Sequence = { model, user: 0, visit: -1, n: 0, events: buffer };
    const emit = (n: number): void => {
      seq.n = n;
      seq.events = buffer;
      orderer.order(buffer, n, ts, tie);
      fn(seq);
    };
    for (let u = 0; u + 1 < userEvents.length; u++) {
      const end = userEvents[u + 1];
      const start = userEvents[u];
      if (end - start > buffer.length) buffer = grow(buffer, end - start);
      seq.user = u;
      let n = 0;
      let current = -2;
      for (let i = start; i < end; i++) {
        const t = ts[i];
        // Written so that a hidden user's +Infinity fails even with `to` = +Infinity.
        if (!(t >= q.from && t < q.to) || (botWant >= 0 && isBot[i] !== botWant) || !passes(i)) continue;
        if (unit === 'visit') {
          const v = visit[i];
          if (v < 0) continue;
          // A visit's events are contiguous (model.ts): a new visit closes the previous one.
          if (v !== current) {
            if (n > 0) emit(n);
            n = 0;
            current = v;
            seq.visit = v;
          }
        }
        buffer[n++] = i;
      }
      if (n > 0) emit(n);
    }
  }
}

function grow(a: Uint32Array, n: number): Uint32Array<ArrayBuffer> {
  let size = a.length;
  while (size < n) size *= 2;
  return new Uint32Array(size);
}

/**
 * Sorts `events[0, n)` by (time, tie, index). A user's events are nearly in time order already
 * (visits in start order, each in time order; events of no visit last, in time order), so the
 * sort is a natural merge sort: the already ordered runs are found and merged pairwise, linear
 * when they are few, with no comparator closure and no boxed indexes.
 */
class Orderer {
  #keys = new Float64Array(1024);
  #spare = new Uint32Array(1024);
  #spareKeys = new Float64Array(1024);
  /** Where each run ends (exclusive). */
  #ends = new Uint32Array(1024);

  order(
    events: Uint32Array,
    n: number,
    ts: Float64Array,
    tie: ((event: number) => number) | undefined,
  ): void {
    if (this.#keys.length < n) this.#fit(n);
    const keys = this.#keys;
    const ends = this.#ends;
    let runs = 0;
    if (tie !== undefined) {
      for (let k = 0; k < n; k++) keys[k] = tie(events[k]);
      for (let k = 1; k < n; k++) {
        if (!before(events[k - 1], keys[k - 1], events[k], keys[k], ts)) ends[runs++] = k;
      }
    } else {
      // The common case, and most often already in order: no keys to read or write.
      for (let k = 1; k < n; k++) {
        const a = events[k - 1];
        const b = events[k];
        if (ts[a] > ts[b] || (ts[a] === ts[b] && a > b)) ends[runs++] = k;
      }
      if (runs > 0) keys.fill(0, 0, n);
    }
    if (runs === 0) return;
    ends[runs++] = n;
    let from: Uint32Array = events;
    let fromKeys = keys;
    let to: Uint32Array = this.#spare;
    let toKeys = this.#spareKeys;
    while (runs > 1) {
      let merged = 0;
      let lo = 0;
      for (let r = 0; r < runs; r += 2) {
        const mid = ends[r];
        const hi = r + 1 < runs ? ends[r + 1] : mid;
        merge(from, fromKeys, lo, mid, hi, to, toKeys, ts);
        ends[merged++] = hi;
        lo = hi;
      }
      runs = merged;
      const spare = from;
      from = to;
      to = spare;
      const spareKeys = fromKeys;
      fromKeys = toKeys;
      toKeys = spareKeys;
    }
    if (from !== events) events.set(from.subarray(0, n));
  }

  #fit(n: number): void {
    const size = 2 ** Math.ceil(Math.log2(n));
    this.#keys = new Float64Array(size);
    this.#spare = new Uint32Array(size);
    this.#spareKeys = new Float64Array(size);
    this.#ends = new Uint32Array(size);
  }
}

/** Whether event a (tie key ka) comes strictly before event b in (time, tie, index) order. */
function before(a: number, ka: number, b: number, kb: number, ts: Float64Array): boolean {
  const ta = ts[a];
  const tb = ts[b];
  if (ta !== tb) return ta < tb;
  if (ka !== kb) return ka < kb;
  return a < b;
}

/** Merges the ordered runs [lo, mid) and [mid, hi) of `from` into the same places of `to`. */
function merge(
  from: Uint32Array,
  fromKeys: Float64Array,
  lo: number,
  mid: number,
  hi: number,
  to: Uint32Array,
  toKeys: Float64Array,
  ts: Float64Array,
): void {
  let i = lo;
  let j = mid;
  let out = lo;
  while (i < mid && j < hi) {
    if (before(from[j], fromKeys[j], from[i], fromKeys[i], ts)) {
      to[out] = from[j];
      toKeys[out++] = fromKeys[j++];
    } else {
      to[out] = from[i];
      toKeys[out++] = fromKeys[i++];
    }
  }
  for (; i < mid; i++, out++) {
    to[out] = from[i];
    toKeys[out] = fromKeys[i];
  }
  for (; j < hi; j++, out++) {
    to[out] = from[j];
    toKeys[out] = fromKeys[j];
  }
}
