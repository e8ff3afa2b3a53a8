import { shared } from './shared.ts';

/** A column's codes: the narrowest unsigned array that holds its dictionary's size. */
export type Codes = Uint8Array | Uint16Array | Uint32Array;

/**
 * A dictionary of one column's distinct values. Code 0 is the missing value (NULL), so a
 * zero-filled code array is a column of NULLs; codes 1… are the values in first-seen order.
 */
export class Dictionary {
  readonly #codes = new Map<string, number>();
  readonly #values: (string | null)[] = [null];

  /** The code of `value`, interned on first sight. */
  code(value: string | null): number {
    if (value === null) return 0;
    let code = this.#codes.get(value);
    if (code === undefined) {
      code = this.#values.push(value) - 1;
      this.#codes.set(value, code);
    }
    return code;
  }

  /** The code of `value`, or -1 when the dictionary has no such value. */
  find(value: string): number {
    return this.#codes.get(value) ?? -1;
  }

  /** The value of `code` (null for 0). */
  value(code: number): string | null {
    return this.#values[code];
  }

  /** How many codes there are, the missing value's included. */
  get size(): number {
    return this.#values.length;
  }

  /**
   * The values as a few long strings and the offsets that cut them: what a thread sends another
   * (transfer.ts), a long string being far cheaper to copy between heaps than as many strings as
   * there are values. Chunk k holds codes [starts[k], starts[k+1]); code c ends at ends[c] in it.
   */
  pack(): PackedDictionary {
    const texts: string[] = [];
    const starts = [1];
    const ends = new Uint32Array(this.#values.length);
    let text = '';
    for (let c = 1; c < this.#values.length; c++) {
      const value = this.#values[c]!;
      // A string has at most ~2^29 characters in V8: a chunk stops well short of it.
      if (text.length > 0 && text.length + value.length > MAX_PACKED_CHARS) {
        texts.push(text);
        starts.push(c);
        text = '';
      }
      text += value;
      ends[c] = text.length;
    }
    texts.push(text);
    return { texts, starts, ends };
  }

  /**
   * The dictionary `packed` holds, interned `slice` values at a time with `pause()` awaited in
   * between (a model of a million users must not hold up the thread that answers).
   */
  static async unpack(
    packed: PackedDictionary,
    slice: number,
    pause: () => Promise<void>,
  ): Promise<Dictionary> {
    const d = new Dictionary();
    const { texts, starts, ends } = packed;
    let chunk = 0;
    let from = 0;
    for (let c = 1; c < ends.length; c++) {
      if (c === starts[chunk + 1]) {
        chunk++;
        from = 0;
      }
      const value = texts[chunk].slice(from, ends[c]);
      from = ends[c];
      d.#values.push(value);
      d.#codes.set(value, c);
      if (c % slice === 0) await pause();
    }
    return d;
  }

  /** Approximate heap bytes of the values and the map (for the memory report). */
  get bytes(): number {
    let chars = 0;
    for (let i = 1; i < this.#values.length; i++) chars += this.#values[i]!.length;
    // Each distinct string is held once; ~40 B per map entry and string header on V8.
    return 2 * chars + 56 * this.#values.length;
  }
}

/** A dictionary as transfer.ts sends it between threads (Dictionary.pack). */
export interface PackedDictionary {
  texts: string[];
  starts: number[];
  ends: Uint32Array;
}

const MAX_PACKED_CHARS = 1 << 24;

/** `codes` in `order` (out[i] = codes[order[i]]), in the narrowest shared array for `size` codes. */
export function narrow(codes: ArrayLike<number>, order: Uint32Array, size: number): Codes {
  const out =
    size <= 0x100
      ? shared(Uint8Array, order.length)
      : size <= 0x10000
        ? shared(Uint16Array, order.length)
        : shared(Uint32Array, order.length);
  for (let i = 0; i < order.length; i++) out[i] = codes[order[i]];
  return out;
}

/** One dictionary-encoded column. */
export interface Column {
  dict: Dictionary;
  codes: Codes;
}
