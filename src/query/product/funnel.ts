import type { Dimension, Filter } from '../filters.ts';
import { compileFilters } from '../columnar/compile-filters.ts';
import type { Codes } from '../columnar/dictionary.ts';
import type { ColumnarModel } from '../columnar/model.ts';
import { keyReader, Slots, Tally } from './funnel-tally.ts';
import { forEachSequence, type Sequence, type SequenceQuestion } from './sequences.ts';

/**
 * Funnels (issue 21, CONTRACT-21 "Funnel"): how many users (or visits) did step 1, then step 2
 * within the window, and so on, in strict or any order, with the median time between steps.
 * One pass over each unit's events in time order: per unit O(events × steps), never a rescan
 * per start, as a user may have 100,000 events.
 */

export interface FunnelQuestion extends SequenceQuestion {
  /** 2..10 steps; a step = filters an event must all pass. */
  steps: readonly (readonly Filter[])[];
  /** The conversion window, inclusive: a chain's last event is at most this long after its first. */
  windowMs: number;
  unit: 'user' | 'visit';
  order: 'strict' | 'any';
  breakdown?: Dimension;
  /** With a breakdown: at most this many groups (the first in the answer's order); default all. */
  limit?: number;
}

export interface FunnelStepCount {
  count: number;
  medianMsFromPrevious: number | null;
}

export interface FunnelAnswer {
  steps: FunnelStepCount[];
  groups: { key: string | null; steps: FunnelStepCount[] }[];
  /** How many groups there are in all, `limit` or not (0 without a breakdown). */
  totalGroups: number;
}

/** The funnel over the layers' models (base first); each unit is counted once, at its deepest chain. */
export function funnel(models: readonly ColumnarModel[], q: FunnelQuestion): FunnelAnswer {
  const k = q.steps.length;
  // Step masks are 16 bits wide; the API allows 10 steps.
  if (k < 1 || k > 16) throw new RangeError(`a funnel has 1 to 16 steps (got ${k})`);
  const groups = new Slots();
  const tally = new Tally(k);
  const s = new Scratch(k);
  let compiled: Compiled | undefined;

  const onUnit = (seq: Sequence): void => {
    if (compiled?.model !== seq.model) compiled = compile(seq.model, q, groups);
    const { n } = seq;
    s.fit(n);
    const { masks, times } = s;
    const ts = seq.model.events.ts;
    const events = seq.events;
    const maskOf = compiled.maskOf;
    let seen = 0;
    let tied = false;
    for (let p = 0; p < n; p++) {
      const i = events[p];
      seen |= masks[p] = maskOf(i);
      times[p] = ts[i];
      if (p > 0 && times[p] === times[p - 1] && masks[p] < masks[p - 1]) tied = true;
    }
    if (q.order === 'strict' ? (seen & 1) === 0 : seen === 0) return;
    if (tied) s.orderTies(events, n);
    const depth =
      q.order === 'strict' ? strictChain(s, n, k, q.windowMs) : anyOrderChain(s, n, k, q.windowMs);
    if (depth > 0) tally.add(depth, compiled.keyOf((tied ? s.events : events)[s.start]), s.chain);
  };

  // TRICKY: the contract's order is (time, mask, index). The sequence comes by (time, index), and
  // ties of time are rare: reordering them here (Scratch.orderTies) reads each event's mask once,
  // where a `tie` would have forEachSequence compute it a second time for every event.
  forEachSequence(models, q, q.unit, onUnit);
  return tally.answer(q.breakdown === undefined ? undefined : groups, q.limit ?? Infinity);
}

/**
 * Strict order: from each start, the greedy chain (the first match of each next step within the
 * window). Returns the deepest chain's depth; its start and times are left in `s`.
 * TRICKY: a later start's chain lies at or after an earlier one's, step by step (e_2 is the first
 * match after e_1, and e_1 grew; so on by induction): one forward pointer per step serves every
 * start, O(events × steps) in all, where a walk per start would be quadratic.
 */
function strictChain(s: Scratch, n: number, k: number, windowMs: number): number {
  const { masks, times, pointers } = s;
  pointers.fill(0);
  let best = 0;
  for (let start = 0; start < n && best < k; start++) {
    if ((masks[start] & 1) === 0) continue;
    let at = start;
    let depth = 1;
    for (; depth < k; depth++) {
      let next = pointers[depth];
      if (next <= at) next = at + 1;
      while (next < n && ((masks[next] >>> depth) & 1) === 0) next++;
      pointers[depth] = next;
      if (next === n || times[next] - times[start] > windowMs) break;
      at = next;
    }
    if (depth > best) {
      best = depth;
      s.start = start;
    }
  }
  // The best chain's times, walked once more.
  const { chain } = s;
  let at = s.start;
  chain[0] = times[at];
  for (let depth = 1; depth < best; depth++) {
    do at++;
    while (((masks[at] >>> depth) & 1) === 0);
    chain[depth] = times[at];
  }
  return best;
}

/**
 * Any order: the distinct steps matched within [start, start + window] (sequence order from the
 * start on). Walking backwards, each step's nearest match at or after the position is known, and
 * a step is in the window iff that match is: O(steps) per start. Returns the deepest start's
 * depth (the first such start: ties go to the earlier); `s.chain[j - 1]` gets t_j, the time at
 * which its window first holds j distinct steps.
 */
function anyOrderChain(s: Scratch, n: number, k: number, windowMs: number): number {
  const { masks, times, nearest } = s;
  for (let b = 0; b < k; b++) nearest[b] = Infinity;
  let best = 0;
  for (let p = n - 1; p >= 0; p--) {
    const m = masks[p];
    if (m === 0) continue;
    const t = times[p];
    let depth = 0;
    for (let b = 0; b < k; b++) {
      if ((m >>> b) & 1) nearest[b] = t;
      depth += nearest[b] - t <= windowMs ? 1 : 0;
    }
    if (depth >= best) {
      best = depth;
      s.start = p;
    }
  }
  // Only with a negative window is best 0: no event is within it of itself.
  let union = 0;
  let reached = 0;
  for (let p = s.start; reached < best; p++) {
    union |= masks[p];
    const now = popcount(union);
    while (reached < now) s.chain[reached++] = times[p];
  }
  return best;
}

function popcount(x: number): number {
  let c = 0;
  for (let m = x; m !== 0; m &= m - 1) c++;
  return c;
}

/** Per-unit arrays, grown to the largest unit and reused, and the deepest chain found. */
class Scratch {
  masks = new Uint16Array(1024);
  times = new Float64Array(1024);
  events = new Uint32Array(1024);
  keys = new Float64Array(0);
  /** strictChain: per step, the position its search has reached. */
  readonly pointers: Int32Array;
  /** anyOrderChain: per step, the time of its nearest match at or after the position. */
  readonly nearest: Float64Array;
  /** The deepest chain's start (a position) and its steps' times. */
  start = 0;
  readonly chain: Float64Array;

  constructor(k: number) {
    this.pointers = new Int32Array(k);
    this.nearest = new Float64Array(k);
    this.chain = new Float64Array(k);
  }

  fit(n: number): void {
    if (this.masks.length >= n) return;
    const size = 2 ** Math.ceil(Math.log2(n));
    this.masks = new Uint16Array(size);
    this.times = new Float64Array(size);
    this.events = new Uint32Array(size);
  }

  /** Orders each run of equal times by (mask, index) (runs come by index), the events into `this.events`. */
  orderTies(from: Uint32Array, n: number): void {
    const { masks, times, events } = this;
    events.set(from.subarray(0, n));
    for (let a = 0; a < n;) {
      let b = a + 1;
      while (b < n && times[b] === times[a]) b++;
      if (b - a > 1) {
        if (this.keys.length < b - a) this.keys = new Float64Array(2 ** Math.ceil(Math.log2(b - a)));
        // Masks are < 2^16 and indexes < 2^32: the key (< 2^48) is exact in a double and sorts as the pair.
        const keys = this.keys.subarray(0, b - a);
        for (let p = a; p < b; p++) keys[p - a] = masks[p] * 2 ** 32 + events[p];
        keys.sort();
        for (let p = a; p < b; p++) {
          masks[p] = Math.floor(keys[p - a] / 2 ** 32);
          events[p] = keys[p - a] % 2 ** 32;
        }
      }
      a = b;
    }
  }
}

/** What a model answers per event: its step mask, and its unit's group (breakdown) id. */
interface Compiled {
  model: ColumnarModel;
  /** Bit j − 1 set when the event passes step j's filters. */
  maskOf: (event: number) => number;
  keyOf: (event: number) => number;
}

/**
 * Steps compiled per model into lookup tables, one per column the steps read: table[code] = the
 * steps whose filters on that column pass the value; an event's mask is the AND of its columns'
 * entries. A 3-step funnel on event types is one array read per event.
 */
function compile(model: ColumnarModel, q: FunnelQuestion, groups: Slots): Compiled {
  const all = (1 << q.steps.length) - 1;
  let always = all;
  let noVisit = all;
  const eventTables = new Map<Codes, Uint16Array>();
  const visitTables = new Map<Codes, Uint16Array>();
  const clear = (tables: Map<Codes, Uint16Array>, codes: Codes, pass: Uint8Array, bit: number) => {
    let table = tables.get(codes);
    if (table === undefined) tables.set(codes, (table = new Uint16Array(pass.length).fill(all)));
    for (let code = 0; code < pass.length; code++) if (pass[code] === 0) table[code] &= ~bit;
  };
  q.steps.forEach((filters, j) => {
    const bit = 1 << j;
    const c = compileFilters(model, filters);
    if (c.empty) always &= ~bit;
    if (!c.noVisitPasses) noVisit &= ~bit;
    for (const f of c.events) clear(eventTables, f.codes, f.pass, bit);
    for (const f of c.visits) clear(visitTables, f.codes, f.pass, bit);
  });
  const events = [...eventTables].map(([codes, table]) => ({ codes, table }));
  const visits = [...visitTables].map(([codes, table]) => ({ codes, table }));
  const visitOf = model.events.visit;
  let maskOf = (i: number): number => {
    let m = always;
    for (let t = 0; t < events.length; t++) m &= events[t].table[events[t].codes[i]];
    if (visits.length > 0) {
      const v = visitOf[i];
      if (v < 0) return m & noVisit;
      for (let t = 0; t < visits.length; t++) m &= visits[t].table[visits[t].codes[v]];
    }
    return m;
  };
  if (events.length === 1 && visits.length === 0) {
    // Steps on one event column (event types, say): the common funnel, one read per event.
    const { codes, table } = events[0];
    maskOf = (i) => always & table[codes[i]];
  }
  return { model, maskOf, keyOf: keyReader(model, q.breakdown, groups) };
}
