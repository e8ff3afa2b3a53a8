import type { TallyEvent } from '../event/types.ts';
import { TallyError } from '../errors/tally-error.ts';

export interface MicroBatcherOptions<T, R> {
  /**
   * Commits one batch; resolves with one result per item (embedded: stored, duplicate or dropped
   * per event), or undefined when there is nothing to say per item (Kafka).
   */
  commit: (items: T[]) => Promise<R[] | undefined>;
  maxBatchEvents: number;
  lingerMs: number;
  /** Requests beyond this many queued events are refused with 503 instead of queueing. */
  maxQueuedEvents: number;
  /**
   * Most batches committing at once (default 1). More than one lets the next batch's statements
   * run while the previous one waits on row locks or its commit; `commit` must then be safe to
   * run concurrently with itself.
   */
  maxInFlight?: number;
}

interface Pending<T, R> {
  events: T[];
  resolve: (results: R[] | undefined) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for HTTP ingest: concurrent requests are coalesced into one transaction.
 * While `maxInFlight` batches commit, new requests queue up and form the next batch, so batches
 * grow with load and a quiet server still answers within `lingerMs`. A request's promise settles only
 * after its events are committed (or the commit failed). The items are events (embedded) or
 * encoded Kafka messages (`tally ingest`).
 */
export class MicroBatcher<T = TallyEvent, R = boolean> {
  readonly #opts: MicroBatcherOptions<T, R>;
  #queue: Pending<T, R>[] = [];
  #queuedEvents = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #maxInFlight: number;
  #stopping = false;

  constructor(options: MicroBatcherOptions<T, R>) {
    this.#opts = options;
    this.#maxInFlight = Math.max(1, options.maxInFlight ?? 1);
  }

  get queuedEvents(): number {
    return this.#queuedEvents;
  }

  submit(events: T[]): Promise<R[] | undefined> {
    if (this.#stopping) {
      return Promise.reject(
        new TallyError('TALLY_SHUTTING_DOWN', 'Tally is shutting down; retry against another instance'),
      );
    }
    if (this.#queuedEvents + events.length > this.#opts.maxQueuedEvents && this.#queuedEvents > 0) {
      return Promise.reject(new TallyError('TALLY_UNAVAILABLE', 'ingest queue is full; retry shortly'));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ events, resolve, reject });
      this.#queuedEvents += events.length;
      this.#schedule();
    });
  }

  /** Refuses new work and waits until everything queued has been committed or failed. */
  async stop(): Promise<void> {
    this.#stopping = true;
    while (this.#inFlight.size > 0 || this.#queue.length > 0) {
      if (this.#inFlight.size < this.#maxInFlight) this.#flush();
      await Promise.race(this.#inFlight);
    }
  }

  #schedule(): void {
    // With every slot busy, the first batch to finish picks the queue up.
    if (this.#inFlight.size >= this.#maxInFlight) return;
    if (this.#queuedEvents >= this.#opts.maxBatchEvents || this.#opts.lingerMs === 0) {
      this.#flush();
    } else {
      this.#timer ??= setTimeout(() => this.#flush(), this.#opts.lingerMs);
    }
  }

  #flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    while (this.#queue.length > 0 && this.#inFlight.size < this.#maxInFlight) this.#start();
  }

  #start(): void {
    const batch: Pending<T, R>[] = [];
    let size = 0;
    // Whole requests only; a request larger than a batch goes alone.
    while (
      this.#queue.length > 0 &&
      (batch.length === 0 || size + this.#queue[0].events.length <= this.#opts.maxBatchEvents)
    ) {
      const next = this.#queue.shift()!;
      batch.push(next);
      size += next.events.length;
    }
    this.#queuedEvents -= size;
    const committing: Promise<void> = this.#commit(batch).finally(() => {
      this.#inFlight.delete(committing);
      // Requests that queued during the commit have waited long enough: commit them now.
      if (this.#queue.length > 0) this.#flush();
    });
    this.#inFlight.add(committing);
  }

  async #commit(batch: Pending<T, R>[]): Promise<void> {
    const events = batch.length === 1 ? batch[0].events : batch.flatMap((p) => p.events);
    try {
      const fresh = await this.#opts.commit(events);
      let offset = 0;
      for (const p of batch) {
        p.resolve(fresh?.slice(offset, offset + p.events.length));
        offset += p.events.length;
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }
}
