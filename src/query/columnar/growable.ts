type Numbers = Uint8Array | Uint32Array | Float64Array;

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

  /** Pads with zeros up to `length` (a column that starts late, e.g. a property key first seen midway). */
  padTo(length: number): void {
    while (this.length < length) this.push(0);
  }

  /** The filled part (a view: valid until the next push). */
  view(): T {
    return this.#array.subarray(0, this.length) as T;
  }
}

export const u8 = () => new Growable((n) => new Uint8Array(n));
export const u32 = () => new Growable((n) => new Uint32Array(n));
export const f64 = () => new Growable((n) => new Float64Array(n));
