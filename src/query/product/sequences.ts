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
  let keys = new Float64Array(1024);
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
      order(buffer, n, ts, tie, (keys = keys.length >= n ? keys : new Float64Array(buffer.length)));
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
 * (visits in start order, each in time order; events of no visit last), so a check comes first.
 */
function order(
  events: Uint32Array,
  n: number,
  ts: Float64Array,
  tie: ((event: number) => number) | undefined,
  keys: Float64Array,
): void {
  if (tie !== undefined) for (let k = 0; k < n; k++) keys[k] = tie(events[k]);
  let sorted = true;
  for (let k = 1; k < n && sorted; k++) {
    const a = events[k - 1];
    const b = events[k];
    if (ts[a] !== ts[b]) sorted = ts[a] < ts[b];
    else if (tie !== undefined && keys[k - 1] !== keys[k]) sorted = keys[k - 1] < keys[k];
    else sorted = a < b;
  }
  if (sorted) return;
  const idx = Array.from({ length: n }, (_, k) => k);
  idx.sort((x, y) => {
    const a = events[x];
    const b = events[y];
    return ts[a] - ts[b] || (tie === undefined ? 0 : keys[x] - keys[y]) || a - b;
  });
  const copy = events.slice(0, n);
  for (let k = 0; k < n; k++) events[k] = copy[idx[k]];
}
