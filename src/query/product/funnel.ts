import type { Dimension, Filter } from '../filters.ts';
import { compileFilters } from '../columnar/compile-filters.ts';
import type { Codes, Column } from '../columnar/dictionary.ts';
import { f64, u32, type Growable } from '../columnar/growable.ts';
import { median } from '../columnar/median.ts';
import type { ColumnarModel } from '../columnar/model.ts';
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
}

export interface FunnelStepCount {
  count: number;
  medianMsFromPrevious: number | null;
}

export interface FunnelAnswer {
  steps: FunnelStepCount[];
  groups: { key: string | null; steps: FunnelStepCount[] }[];
}

/** The funnel over the layers' models (base first); each unit is counted once, at its deepest chain. */
export function funnel(models: readonly ColumnarModel[], q: FunnelQuestion): FunnelAnswer {
  const k = q.steps.length;
  const groups = new GroupIds();
  const tally = new Tally(k);
  const scratch = new Scratch();
  const chain = new Float64Array(k);
  let compiled: Compiled | undefined;
  const compiledFor = (model: ColumnarModel): Compiled =>
    compiled?.model === model ? compiled : (compiled = compile(model, q, groups));

  const onUnit = (seq: Sequence): void => {
    const c = compiledFor(seq.model);
    const { n, events } = seq;
    const { masks, times } = scratch.fit(n, q.order === 'strict' ? k : 0);
    const ts = seq.model.events.ts;
    let seen = 0;
    for (let p = 0; p < n; p++) {
      const i = events[p];
      seen |= masks[p] = c.maskOf(i);
      times[p] = ts[i];
    }
    const found =
      q.order === 'strict'
        ? (seen & 1) === 0
          ? undefined
          : strictChain(scratch, n, k, q.windowMs, chain)
        : seen === 0
          ? undefined
          : anyOrderChain(scratch, n, q.windowMs, chain);
    if (found === undefined) return;
    tally.add(found.depth, c.keyOf(events[found.start]), chain);
  };

  forEachSequence(models, q, q.unit, onUnit, { tie: (model) => compiledFor(model).maskOf });
  return tally.answer(groups.keys);
}

/** A unit's deepest chain: its depth and the position of its start in the sequence. */
interface Found {
  depth: number;
  start: number;
}

/**
 * Strict order: from each start, the greedy chain (the first match of each next step), read off
 * next-match tables built backwards, so a start costs O(steps). `chain` gets the chain's times.
 */
function strictChain(s: Scratch, n: number, k: number, windowMs: number, chain: Float64Array): Found {
  const { masks, times, next } = s;
  const stride = n + 1;
  // next[(b - 1) * stride + p]: the first position ≥ p whose event matches step b + 1 (n: none).
  for (let b = 1; b < k; b++) {
    const row = (b - 1) * stride;
    next[row + n] = n;
    for (let p = n - 1; p >= 0; p--) next[row + p] = (masks[p] >>> b) & 1 ? p : next[row + p + 1];
  }
  const depthFrom = (start: number, record: boolean): number => {
    const limit = times[start];
    let at = start;
    let depth = 1;
    if (record) chain[0] = limit;
    while (depth < k) {
      const q = next[(depth - 1) * stride + at + 1];
      if (q === n || times[q] - limit > windowMs) break;
      at = q;
      if (record) chain[depth] = times[q];
      depth++;
    }
    return depth;
  };
  let best = 0;
  let bestStart = -1;
  for (let p = 0; p < n && best < k; p++) {
    if ((masks[p] & 1) === 0) continue;
    const depth = depthFrom(p, false);
    if (depth > best) {
      best = depth;
      bestStart = p;
    }
  }
  depthFrom(bestStart, true);
  return { depth: best, start: bestStart };
}

/**
 * Any order: the distinct steps matched within [start, start + window] (sequence order from the
 * start on), for every start at once by a sliding window of per-step counts. `chain[j - 1]` gets
 * t_j, the time at which the best start's window first holds j distinct steps.
 */
function anyOrderChain(s: Scratch, n: number, windowMs: number, chain: Float64Array): Found | undefined {
  const { masks, times, counts } = s;
  counts.fill(0);
  let distinct = 0;
  let end = 0; // the window is positions [p, end)
  let best = 0;
  let bestStart = -1;
  for (let p = 0; p < n; p++) {
    if (end < p) end = p;
    while (end < n && times[end] - times[p] <= windowMs) {
      for (let m = masks[end], b = 0; m !== 0; m >>>= 1, b++) if (m & 1 && counts[b]++ === 0) distinct++;
      end++;
    }
    if (masks[p] !== 0 && distinct > best) {
      best = distinct;
      bestStart = p;
    }
    if (p < end) {
      for (let m = masks[p], b = 0; m !== 0; m >>>= 1, b++) if (m & 1 && --counts[b] === 0) distinct--;
    }
  }
  // Only with a negative window: no event is within it of itself.
  if (best === 0) return undefined;
  let union = 0;
  let reached = 0;
  for (let p = bestStart; reached < best; p++) {
    union |= masks[p];
    const now = popcount(union);
    while (reached < now) chain[reached++] = times[p];
  }
  return { depth: best, start: bestStart };
}

function popcount(x: number): number {
  let c = 0;
  for (let m = x; m !== 0; m &= m - 1) c++;
  return c;
}

/** Per-unit arrays, grown to the largest unit and reused. */
class Scratch {
  masks = new Uint16Array(1024);
  times = new Float64Array(1024);
  next = new Int32Array(0);
  counts = new Int32Array(16);

  fit(n: number, steps: number): this {
    if (this.masks.length < n) {
      const size = 2 ** Math.ceil(Math.log2(n));
      this.masks = new Uint16Array(size);
      this.times = new Float64Array(size);
    }
    const nextSize = Math.max(0, steps - 1) * (n + 1);
    if (this.next.length < nextSize) this.next = new Int32Array(2 ** Math.ceil(Math.log2(nextSize)));
    return this;
  }
}

/** What a model answers per event: its step mask, and its unit's group (breakdown) id. */
interface Compiled {
  model: ColumnarModel;
  /** Bit j − 1 set when the event passes step j's filters (the sequence's tie, too). */
  maskOf: (event: number) => number;
  keyOf: (event: number) => number;
}

/**
 * Steps compiled per model into lookup tables, one per column the steps read: table[code] = the
 * steps whose filters on that column pass the value; an event's mask is the AND of its columns'
 * entries. A 3-step funnel on event types is one array read per event.
 */
function compile(model: ColumnarModel, q: FunnelQuestion, groups: GroupIds): Compiled {
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
  const maskOf = (i: number): number => {
    let m = always;
    for (const t of events) m &= t.table[t.codes[i]];
    if (visits.length > 0) {
      const v = visitOf[i];
      if (v < 0) return m & noVisit;
      for (const t of visits) m &= t.table[t.codes[v]];
    }
    return m;
  };
  return { model, maskOf, keyOf: keyReader(model, q.breakdown, groups) };
}

/** Group ids by key, shared by the models (each has its own dictionaries): matched by value. */
class GroupIds {
  readonly keys: (string | null)[] = [];
  readonly #ids = new Map<string | null, number>();

  idOf(key: string | null): number {
    let id = this.#ids.get(key);
    if (id === undefined) this.#ids.set(key, (id = this.keys.push(key) - 1));
    return id;
  }
}

/** The group id of an event's breakdown value (visit dimensions: its visit's); -1 with no breakdown. */
function keyReader(
  model: ColumnarModel,
  d: Dimension | undefined,
  groups: GroupIds,
): (event: number) => number {
  if (d === undefined) return () => -1;
  const column: Column | undefined =
    d.kind === 'event'
      ? model.events.dims[d.name]
      : d.kind === 'visit'
        ? model.visits.dims[d.name]
        : model.events.properties.get(d.key);
  if (column === undefined) {
    const none = groups.idOf(null);
    return () => none;
  }
  // Dictionary codes to group ids, each code looked up once.
  const ids = new Int32Array(column.dict.size).fill(-1);
  const idOfCode = (code: number) =>
    ids[code] >= 0 ? ids[code] : (ids[code] = groups.idOf(column.dict.value(code)));
  if (d.kind !== 'visit') return (i) => idOfCode(column.codes[i]);
  const visitOf = model.events.visit;
  return (i) => (visitOf[i] < 0 ? groups.idOf(null) : idOfCode(column.codes[visitOf[i]]));
}

/** Depths and step-to-step times of the units, in total and per group. */
class Tally {
  readonly #k: number;
  /** reached[d]: units of depth exactly d (total); per group likewise. */
  readonly #reached: number[];
  readonly #groupReached: number[][] = [];
  /** #gaps[j]: for each unit of depth ≥ j + 1, its time from step j to step j + 1, and its group. */
  readonly #gaps: Growable<Float64Array>[] = [];
  readonly #gapGroups: Growable<Uint32Array>[] = [];

  constructor(k: number) {
    this.#k = k;
    this.#reached = new Array<number>(k + 1).fill(0);
    for (let j = 0; j < k; j++) {
      this.#gaps.push(f64());
      this.#gapGroups.push(u32());
    }
  }

  /** A unit of `depth` ≥ 1 in `group` (-1: none), its chain's step times in `chain`. */
  add(depth: number, group: number, chain: Float64Array): void {
    this.#reached[depth]++;
    if (group >= 0) {
      while (this.#groupReached.length <= group)
        this.#groupReached.push(new Array<number>(this.#k + 1).fill(0));
      this.#groupReached[group][depth]++;
    }
    for (let j = 1; j < depth; j++) {
      this.#gaps[j].push(chain[j] - chain[j - 1]);
      this.#gapGroups[j].push(group);
    }
  }

  answer(keys: readonly (string | null)[]): FunnelAnswer {
    const groupMedians = keys.map(() => new Array<number | null>(this.#k).fill(null));
    if (keys.length > 0) {
      for (let j = 1; j < this.#k; j++) {
        mediansByGroup(this.#gaps[j].view(), this.#gapGroups[j].view(), groupMedians, j);
      }
    }
    const none = new Array<number>(this.#k + 1).fill(0);
    const groups = keys
      .map((key, g) => ({
        key,
        steps: this.#steps(this.#groupReached[g] ?? none, (j) => groupMedians[g][j]),
      }))
      .filter((g) => g.steps[0].count > 0)
      .sort((a, b) => b.steps[0].count - a.steps[0].count || compareKeys(a.key, b.key));
    const steps = this.#steps(this.#reached, (j) => {
      const gaps = this.#gaps[j].view();
      return median(gaps, gaps.length);
    });
    return { steps, groups };
  }

  #steps(reached: readonly number[], medianOf: (j: number) => number | null): FunnelStepCount[] {
    const out: FunnelStepCount[] = [];
    let atLeast = 0;
    for (let d = this.#k; d >= 1; d--) {
      atLeast += reached[d];
      out.push({ count: atLeast, medianMsFromPrevious: d === 1 ? null : medianOf(d - 1) });
    }
    return out.reverse();
  }
}

/** Each group's median of `gaps` (copied, grouped by a counting sort) into medians[group][j]. */
function mediansByGroup(gaps: Float64Array, of: Uint32Array, medians: (number | null)[][], j: number): void {
  const starts = new Uint32Array(medians.length + 1);
  for (let i = 0; i < of.length; i++) if (of[i] < medians.length) starts[of[i] + 1]++;
  for (let g = 0; g < medians.length; g++) starts[g + 1] += starts[g];
  const at = starts.slice(0, medians.length);
  const grouped = new Float64Array(starts[medians.length]);
  for (let i = 0; i < of.length; i++) if (of[i] < medians.length) grouped[at[of[i]]++] = gaps[i];
  for (let g = 0; g < medians.length; g++) {
    medians[g][j] = median(grouped.subarray(starts[g], starts[g + 1]), starts[g + 1] - starts[g]);
  }
}

/** Keys by JS string order, null last. */
function compareKeys(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a < b ? -1 : 1;
}
