type Numbers = Uint8Array | Uint32Array | Float64Array;
type CodeArray = Uint8Array | Uint16Array | Uint32Array;

/** An append-only typed array that doubles when full (the builder's columns, in arrival order). */
export class Growable<T extends Numbers> {
  readonly #make: (n: number) => T;
  #array: T;
  length = 0;

  constructor(make: (n: number) => T) {
    this.#make = make;
    this.#array = make(1024);
  }

  push(x: number): void {
    if (this.length === this.#array.length) {
      const grown = this.#make(this.#array.length * 2);
      grown.set(this.#array);
      this.#array = grown;
    }
    this.#array[this.length++] = x;
  }

  /** The filled part (a view: valid until the next push). */
  view(): T {
    return this.#array.subarray(0, this.length) as T;
  }
}

export const u8 = () => new Growable((n) => new Uint8Array(n));
export const u32 = () => new Growable((n) => new Uint32Array(n));
export const f64 = () => new Growable((n) => new Float64Array(n));

/**
 * An append-only column of dictionary codes (the builder's), one byte wide until a code needs
 * two, then two until one needs four: most dimensions (browser, device, country…) never leave
 * one byte, so a load's columns take a quarter of what 32-bit codes would while they grow.
 */
export class CodeColumn {
  #array: CodeArray = new Uint8Array(1024);
  /** Codes below this fit the current width. */
  #limit = 0x100;
  length = 0;

  push(code: number): void {
    if (code >= this.#limit) this.#widen(code);
    if (this.length === this.#array.length) this.#grow(this.#array.length * 2);
    this.#array[this.length++] = code;
  }

  /** Pads with code 0 up to `length` (a column that starts late, e.g. a property key first seen midway). */
  padTo(length: number): void {
    if (length > this.#array.length) this.#grow(Math.max(length, this.#array.length * 2));
    // A new array is zero-filled: only the length moves.
    if (length > this.length) this.length = length;
  }

  /** The filled part (a view: valid until the next push). */
  view(): CodeArray {
    return this.#array.subarray(0, this.length);
  }

  #widen(code: number): void {
    const wide = code >= 0x10000 ? new Uint32Array(this.#array.length) : new Uint16Array(this.#array.length);
    wide.set(this.#array.subarray(0, this.length));
    this.#array = wide;
    this.#limit = code >= 0x10000 ? Number.POSITIVE_INFINITY : 0x10000;
  }

  #grow(size: number): void {
    const grown = new (this.#array.constructor as new (n: number) => CodeArray)(size);
    grown.set(this.#array.subarray(0, this.length));
    this.#array = grown;
  }
}
