import type { Message } from '@platformatic/kafka';
import { BatchBuilder, type BatchBuilderOptions, type PendingBatch } from './batch-builder.ts';

export interface BatchFlusherOptions extends BatchBuilderOptions {
  batchSize: number;
  /** FLUSH_INTERVAL_SEC: the longest a new batch lingers. */
  flushIntervalMs: number;
  /** TALLY_BATCH_LINGER_MS: with no write in flight, how long a new batch waits for more messages. */
  lingerMs: number;
}

export interface BatchFlusherDeps {
  /** Writes one batch (never rejects: failures are handled there). */
  write: (batch: PendingBatch, generation: number) => Promise<void>;
  generation: () => number;
  /** The stored next offset the fence expects for a partition (null: nothing stored yet). */
  expected: (key: string) => number | null;
  /** Backpressure on the stream. */
  pause: () => void;
  resume: () => void;
  isStopping: () => boolean;
}

/**
 * Batching: messages accumulate into a batch that is written as soon as the previous write is
 * done (after a short linger when nothing was being written), so batches grow with load and a
 * quiet processor commits within milliseconds; BATCH_SIZE and FLUSH_INTERVAL_SEC bound them. At
 * most one write is in flight; while it runs the next batch grows, up to BATCH_SIZE.
 */
export class BatchFlusher {
  readonly #options: BatchFlusherOptions;
  readonly #deps: BatchFlusherDeps;
  readonly #builder: BatchBuilder;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  constructor(options: BatchFlusherOptions, deps: BatchFlusherDeps) {
    this.#options = options;
    this.#deps = deps;
    this.#builder = new BatchBuilder({
      groupId: options.groupId,
      maxFutureSkewMs: options.maxFutureSkewMs,
      maxMessageBytes: options.maxMessageBytes,
    });
  }

  /** The write in flight, if any. */
  get inFlight(): Promise<void> | undefined {
    return this.#flushing;
  }

  add(message: Message<Buffer, Buffer, Buffer, Buffer>): void {
    this.#builder.add(message);
    if (this.#builder.size < this.#options.batchSize) {
      // While a write is in flight the batch grows until that write is done (#flush's finally).
      if (!this.#flushing) this.#timer ??= setTimeout(() => this.flush(false), this.#lingerMs());
    } else if (this.#flushing) {
      // Backpressure: one batch is being written (or retried) and the next one is full, so the
      // stream fetches nothing more until the write is done. Memory stays at two batches plus
      // what the stream holds: its buffer and the fetch in flight (see FETCH_MAX_BYTES).
      this.#deps.pause();
    } else {
      this.flush(false);
    }
  }

  /** Writes what has accumulated unless a write is in flight; `final`: nothing follows (stop). */
  flush(final: boolean): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#flushing || this.#builder.size === 0) return;
    const generation = this.#deps.generation();
    // The next batch accumulates while this one is written; it is taken (with the positions this
    // one committed as its expectations) only once this one is done.
    const batch = this.#builder.take(this.#deps.expected);
    this.#flushing = this.#deps.write(batch, generation).finally(() => {
      this.#flushing = undefined;
      if (final || this.#deps.isStopping() || generation !== this.#deps.generation()) return;
      // What arrived during the write has waited for it already: write it now (group commit).
      this.flush(false);
      this.#deps.resume();
    });
  }

  /** Forgets what has accumulated (the partitions moved; the messages will be read again). */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#builder.clear();
  }

  #lingerMs(): number {
    return Math.min(this.#options.lingerMs, this.#options.flushIntervalMs);
  }
}
