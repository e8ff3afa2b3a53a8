import { setTimeout as sleep } from 'node:timers/promises';
import { httpBodies } from './kafka-process.ts';
import { prng, type OracleEvent } from './oracle.ts';

/** One HTTP answer ingest gave (status 0: the connection failed). */
export interface IngestAnswer {
  sentAt: number;
  answeredAt: number;
  status: number;
  retryAfter: string | null;
}

export interface IngestLoadOptions {
  /** `tally ingest`'s base URL. */
  url: string;
  seed: number;
  /** Requests in flight at once. */
  concurrency: number;
  eventsPerRequest: number;
  /** How long a client waits before sending a refused request again. */
  retryDelayMs: number;
}

/**
 * Well-behaved clients posting to `tally ingest` without pause: each request is sent again, with
 * the same event_ids, until it is answered 202, and only then are its events `acked`. So once the
 * load is stopped every event sent has a 2xx, and the set the oracle expects is exactly `acked`.
 * Every answer is kept with its timing so a test can ask what ingest said during a fault.
 */
export class IngestLoad {
  readonly acked: OracleEvent[] = [];
  readonly answers: IngestAnswer[] = [];
  readonly #options: IngestLoadOptions;
  readonly #random: () => number;
  readonly #runId: string;
  #next = 0;
  #stopping = false;
  #workers: Promise<void>[] = [];

  constructor(options: IngestLoadOptions) {
    this.#options = options;
    this.#random = prng(options.seed);
    this.#runId = `load-${options.seed}-${Date.now()}`;
  }

  /** Starts the clients (again, after stop()). */
  start(): void {
    this.#stopping = false;
    this.#workers = Array.from({ length: this.#options.concurrency }, () => this.#client());
  }

  /** Sends no new request; resolves once every request already sent has been answered 202. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#workers);
  }

  /** Answers to requests sent at or after `from` and answered by `to`. */
  answersBetween(from: number, to = Number.POSITIVE_INFINITY): IngestAnswer[] {
    return this.answers.filter((a) => a.sentAt >= from && a.answeredAt <= to);
  }

  /** Answers other than 202 and 503-with-Retry-After: what a client could not act on. */
  unexpectedAnswers(): IngestAnswer[] {
    return this.answers.filter(
      (a) => a.status !== 202 && !(a.status === 503 && a.retryAfter !== null && a.retryAfter !== ''),
    );
  }

  /** How many answers of each status, for diagnostics. */
  statusCounts(answers: readonly IngestAnswer[] = this.answers): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const a of answers) counts[a.status] = (counts[a.status] ?? 0) + 1;
    return counts;
  }

  async #client(): Promise<void> {
    while (!this.#stopping) {
      const batch = this.#batch();
      const body = JSON.stringify(httpBodies(batch));
      while ((await this.#post(body)) !== 202) await sleep(this.#options.retryDelayMs);
      this.acked.push(...batch);
    }
  }

  async #post(body: string): Promise<number> {
    const sentAt = Date.now();
    let status = 0;
    let retryAfter: string | null = null;
    try {
      const res = await fetch(`${this.#options.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      await res.arrayBuffer();
      status = res.status;
      retryAfter = res.headers.get('retry-after');
    } catch {
      // ingest unreachable: recorded as status 0
    }
    this.answers.push({ sentAt, answeredAt: Date.now(), status, retryAfter });
    return status;
  }

  /** The next request's events: mixed types, users and pages over the last three hours. */
  #batch(): OracleEvent[] {
    const random = this.#random;
    const types = ['page_view', 'page_view', 'page_view', 'click', 'user.login', 'purchase'];
    const now = Date.now();
    return Array.from({ length: this.#options.eventsPerRequest }, () => {
      const type = types[Math.floor(random() * types.length)];
      const e: OracleEvent = {
        event_id: `${this.#runId}-${this.#next++}`,
        type,
        user_id: `user-${Math.floor(random() * 500)}`,
        ts: now - 60_000 - Math.floor(random() * 3 * 3_600_000),
      };
      if (type === 'page_view' || type === 'click') e.page_url = `/p/${Math.floor(random() * 40)}`;
      return e;
    });
  }
}
