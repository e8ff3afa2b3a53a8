/**
 * One level past the first of a paths trie (src/query/product/paths.ts): an id per distinct
 * (parent id, code) pair, numbered in order of first sight, with its count.
 *
 * TRICKY: with a common anchor ('/' in the bench's data set: a million occurrences in 10 M
 * events, hundreds of thousands of distinct paths at depth 3) this is the hot loop of a path
 * query. An open-addressing table of plain integers, the count kept in the pair's slot, costs
 * one probe, most often one cache line, per occurrence; a Map per level, or a sort and a binary
 * search per occurrence, cost several times that (issue 21, bench scenario 10).
 */
export class PathLevel {
  /** Ids so far: they are [0, size). */
  size = 0;
  /** Per id: its parent's id in the level above, and its code (valid below `size`). */
  parent: Uint32Array;
  code: Uint32Array;
  /** Four numbers a slot: parent, code, id + 1 (0: empty), count. */
  #slots: Uint32Array;
  #mask: number;

  constructor(capacity = 1024) {
    this.parent = new Uint32Array(capacity);
    this.code = new Uint32Array(capacity);
    this.#mask = 2 * capacity - 1;
    this.#slots = new Uint32Array(4 * 2 * capacity);
  }

  /** Counts one more occurrence of (parent, code) and returns its id. */
  add(parent: number, code: number): number {
    const slots = this.#slots;
    let s = slotOf(parent, code, this.#mask);
    for (;;) {
      const id1 = slots[4 * s + 2];
      if (id1 === 0) break;
      if (slots[4 * s] === parent && slots[4 * s + 1] === code) {
        slots[4 * s + 3]++;
        return id1 - 1;
      }
      s = (s + 1) & this.#mask;
    }
    const id = this.size;
    // Kept at most half full: the table has twice the room of the per-id arrays.
    if (id === this.parent.length) {
      this.#grow();
      return this.add(parent, code);
    }
    slots[4 * s] = parent;
    slots[4 * s + 1] = code;
    slots[4 * s + 2] = id + 1;
    slots[4 * s + 3] = 1;
    this.parent[id] = parent;
    this.code[id] = code;
    this.size++;
    return id;
  }

  /** The id of (parent, code), or -1 when it was never added. */
  find(parent: number, code: number): number {
    const slots = this.#slots;
    for (let s = slotOf(parent, code, this.#mask); ; s = (s + 1) & this.#mask) {
      const id1 = slots[4 * s + 2];
      if (id1 === 0) return -1;
      if (slots[4 * s] === parent && slots[4 * s + 1] === code) return id1 - 1;
    }
  }

  /** The counts of ids [0, size), as a new array (the caller may add to it). */
  counts(): Float64Array {
    const slots = this.#slots;
    const count = new Float64Array(this.size);
    for (let at = 2; at < slots.length; at += 4) if (slots[at] !== 0) count[slots[at] - 1] = slots[at + 1];
    return count;
  }

  #grow(): void {
    const capacity = 2 * this.parent.length;
    const old = this.#slots;
    const parent = new Uint32Array(capacity);
    const code = new Uint32Array(capacity);
    parent.set(this.parent);
    code.set(this.code);
    this.parent = parent;
    this.code = code;
    const mask = (this.#mask = 2 * capacity - 1);
    const slots = (this.#slots = new Uint32Array(4 * 2 * capacity));
    for (let at = 0; at < old.length; at += 4) {
      if (old[at + 2] === 0) continue;
      let s = slotOf(old[at], old[at + 1], mask);
      while (slots[4 * s + 2] !== 0) s = (s + 1) & mask;
      for (let k = 0; k < 4; k++) slots[4 * s + k] = old[at + k];
    }
  }
}

/** The home slot of (parent, code): both mixed by multiplication, so that near ids spread. */
function slotOf(parent: number, code: number, mask: number): number {
  let h = Math.imul(parent ^ Math.imul(code, 0x9e3779b1), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15), 0xc2b2ae35);
  return (h ^ (h >>> 13)) & mask;
}
