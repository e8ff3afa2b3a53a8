import type { Dimension } from '../filters.ts';
import type { Column, Dictionary } from '../columnar/dictionary.ts';
import { f64, u32, u8, type Growable } from '../columnar/growable.ts';
import { median } from '../columnar/median.ts';
import type { ColumnarModel } from '../columnar/model.ts';
import type { FunnelAnswer, FunnelStepCount } from './funnel.ts';
import { topByCount } from './top.ts';

/**
 * A funnel's tally (src/query/product/funnel.ts): each unit's depth and step gaps, kept per
 * breakdown value as integer slots, and the answer made of them: counts, medians and the top
 * groups.
 */

/**
 * The breakdown's values, as slots: each model's codes get a range of their own (code 0 and an
 * event of no visit: null), so a unit is tallied on an integer; slots are matched across models
 * by value only at the end, and only for the few codes the delta layers hold (Slots.merge).
 */
export class Slots {
  readonly ranges: { dict: Dictionary | undefined; base: number; size: number }[] = [];
  size = 0;

  /** A range for one model's column (none: the model never saw the key, all null). */
  add(dict: Dictionary | undefined): number {
    const base = this.size;
    const size = dict?.size ?? 1;
    this.ranges.push({ dict, base, size });
    this.size += size;
    return base;
  }

  /**
   * Adds every slot's count into its representative's: the first range's slot of the same value
   * (found by dictionary lookup), else the first slot of that value met. Returns the
   * representatives with a count, and each slot's representative (-1: none, count 0).
   */
  merge(counts: Uint32Array): { ids: number[]; repOf: Int32Array } {
    const repOf = new Int32Array(this.size).fill(-1);
    const ids: number[] = [];
    if (this.ranges.length === 0) return { ids, repOf };
    const host = this.ranges[0];
    for (let s = host.base; s < host.base + host.size; s++) repOf[s] = s;
    const extras = new Map<string | null, number>();
    for (let r = 1; r < this.ranges.length; r++) {
      const { dict, base, size } = this.ranges[r];
      for (let code = 0; code < size; code++) {
        const s = base + code;
        if (counts[s] === 0) continue;
        const value = dict === undefined ? null : dict.value(code);
        const inHost = value === null ? 0 : host.dict === undefined ? -1 : host.dict.find(value);
        let to = inHost >= 0 ? host.base + inHost : extras.get(value);
        if (to === undefined) extras.set(value, (to = s));
        else counts[to] += counts[s];
        repOf[s] = to;
      }
    }
    // Only now: a host slot may have its count from the deltas alone.
    for (let s = host.base; s < host.base + host.size; s++) if (counts[s] > 0) ids.push(s);
    for (const s of extras.values()) ids.push(s);
    return { ids, repOf };
  }

  /** The value of a slot. */
  keyOf(slot: number): string | null {
    // Ranges are few (a model each) and ascending; this runs per comparison at the cut.
    for (let r = this.ranges.length - 1; r >= 0; r--) {
      const { dict, base } = this.ranges[r];
      if (slot >= base) return dict === undefined ? null : dict.value(slot - base);
    }
    throw new RangeError(`no slot ${slot}`);
  }
}

/** The slot of an event's breakdown value (visit dimensions: its visit's); -1 with no breakdown. */
export function keyReader(
  model: ColumnarModel,
  d: Dimension | undefined,
  slots: Slots,
): (event: number) => number {
  if (d === undefined) return () => -1;
  const column: Column | undefined =
    d.kind === 'event'
      ? model.events.dims[d.name]
      : d.kind === 'visit'
        ? model.visits.dims[d.name]
        : model.events.properties.get(d.key);
  const base = slots.add(column?.dict);
  if (column === undefined) return () => base;
  const { codes } = column;
  if (d.kind !== 'visit') return (i) => base + codes[i];
  const visitOf = model.events.visit;
  return (i) => base + (visitOf[i] < 0 ? 0 : codes[visitOf[i]]);
}

/** Depths and step-to-step times of the units, in total and per breakdown slot. */
export class Tally {
  readonly #k: number;
  /** reached[d]: units of depth exactly d (total). */
  readonly #reached: number[];
  /** Per unit with a slot: its slot and depth. */
  readonly #unitSlots = u32();
  readonly #unitDepths = u8();
  /** #gaps[j]: for each unit of depth ≥ j + 1, its time from step j to step j + 1, and its slot. */
  readonly #gaps: Growable<Float64Array>[] = [];
  readonly #gapSlots: Growable<Uint32Array>[] = [];

  constructor(k: number) {
    this.#k = k;
    this.#reached = new Array<number>(k + 1).fill(0);
    for (let j = 0; j < k; j++) {
      this.#gaps.push(f64());
      this.#gapSlots.push(u32());
    }
  }

  /** A unit of `depth` ≥ 1 in breakdown `slot` (-1: none), its chain's step times in `chain`. */
  add(depth: number, slot: number, chain: Float64Array): void {
    this.#reached[depth]++;
    if (slot >= 0) {
      this.#unitSlots.push(slot);
      this.#unitDepths.push(depth);
    }
    for (let j = 1; j < depth; j++) {
      this.#gaps[j].push(chain[j] - chain[j - 1]);
      this.#gapSlots[j].push(slot);
    }
  }

  /**
   * The total's steps and, with a breakdown (`slots`), the first `limit` groups: groups are
   * counted and ranked per slot on integers, and only the listed ones get step rows.
   */
  answer(slots: Slots | undefined, limit: number): FunnelAnswer {
    // TRICKY: the total's medians reorder the gaps (median), so they come after the groups'.
    const total = (): FunnelStepCount[] =>
      this.#steps(this.#reached, (j) => {
        const gaps = this.#gaps[j].view();
        return median(gaps, gaps.length);
      });
    if (slots === undefined) return { steps: total(), groups: [], totalGroups: 0 };
    const unitSlots = this.#unitSlots.view();
    const unitDepths = this.#unitDepths.view();
    const counts = new Uint32Array(slots.size);
    for (let u = 0; u < unitSlots.length; u++) counts[unitSlots[u]]++;
    const { ids, repOf } = slots.merge(counts);
    const keyOf = (slot: number) => slots.keyOf(slot);
    const top = topByCount(
      ids,
      (s) => counts[s],
      (a, b) => compareKeys(keyOf(a), keyOf(b)),
      limit,
    );
    // Each slot's listed group (-1: not listed).
    const groupOf = new Int32Array(slots.size).fill(-1);
    top.forEach((s, g) => (groupOf[s] = g));
    for (let s = 0; s < slots.size; s++) if (repOf[s] >= 0) groupOf[s] = groupOf[repOf[s]];
    const reached = top.map(() => new Array<number>(this.#k + 1).fill(0));
    for (let u = 0; u < unitSlots.length; u++) {
      const g = groupOf[unitSlots[u]];
      if (g >= 0) reached[g][unitDepths[u]]++;
    }
    const medians = top.map(() => new Array<number | null>(this.#k).fill(null));
    if (top.length > 0) {
      for (let j = 1; j < this.#k; j++) {
        mediansByGroup(this.#gaps[j].view(), this.#gapSlots[j].view(), groupOf, medians, j);
      }
    }
    const groups = top.map((s, g) => ({
      key: keyOf(s),
      steps: this.#steps(reached[g], (j) => medians[g][j]),
    }));
    return { steps: total(), groups, totalGroups: ids.length };
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

/**
 * Each listed group's median of `gaps` (copied, grouped by a counting sort) into
 * medians[group][j]; `slotOf` gives each gap's slot, `groupOf` each slot's group (-1: unlisted).
 */
function mediansByGroup(
  gaps: Float64Array,
  slotOf: Uint32Array,
  groupOf: Int32Array,
  medians: (number | null)[][],
  j: number,
): void {
  const groups = medians.length;
  const starts = new Uint32Array(groups + 1);
  for (let i = 0; i < slotOf.length; i++) {
    const g = groupOf[slotOf[i]];
    if (g >= 0) starts[g + 1]++;
  }
  for (let g = 0; g < groups; g++) starts[g + 1] += starts[g];
  const at = starts.slice(0, groups);
  const grouped = new Float64Array(starts[groups]);
  for (let i = 0; i < slotOf.length; i++) {
    const g = groupOf[slotOf[i]];
    if (g >= 0) grouped[at[g]++] = gaps[i];
  }
  for (let g = 0; g < groups; g++) {
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
