/**
 * Events per second over a sliding window, kept as one counter per second in a ring, so
 * recording and reading are O(window) at worst and memory is fixed.
 */
export class RollingRate {
  readonly #windowSec: number;
  readonly #counts: number[];
  /** The epoch second each ring slot currently counts. */
  readonly #seconds: number[];

  constructor(windowSec = 10) {
    this.#windowSec = windowSec;
    this.#counts = new Array<number>(windowSec).fill(0);
    this.#seconds = new Array<number>(windowSec).fill(-1);
  }

  record(count: number, atMs = Date.now()): void {
    const sec = Math.floor(atMs / 1000);
    const slot = sec % this.#windowSec;
    if (this.#seconds[slot] !== sec) {
      this.#seconds[slot] = sec;
      this.#counts[slot] = 0;
    }
    this.#counts[slot] += count;
  }

  /** Events per second over the last `windowSec` seconds, ending now (the current second included). */
  rate(nowMs = Date.now()): number {
    const now = Math.floor(nowMs / 1000);
    let sum = 0;
    for (let i = 0; i < this.#windowSec; i++) {
      const sec = this.#seconds[i];
      if (sec > now - this.#windowSec && sec <= now) sum += this.#counts[i];
    }
    return sum / this.#windowSec;
  }
}
