import { setTimeout as sleep } from 'node:timers/promises';
import { httpBodies } from './kafka-process.ts';
import { prng, type OracleEvent } from './oracle.ts';
import { waitFor } from './poll.ts';

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
  /** How long a client waits after an accepted request before sending the next (default 0). */
  pauseMs?: number;
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
  /** While set, the clients send nothing (not even retries) until it resolves. */
  #gate: Promise<void> | undefined;
  #openGate: (() => void) | undefined;
  #inFlight = 0;
  #abandoned = false;

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

  /**
   * Sends no new request; resolves once every request already sent has been answered 202. Past
   * `timeoutMs` the clients give up their requests and it rejects: ingest never recovered.
   */
  async stop(timeoutMs = 120_000): Promise<void> {
    this.#stopping = true;
    this.resume();
    const timer = setTimeout(() => (this.#abandoned = true), timeoutMs);
    try {
      await Promise.all(this.#workers);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Holds every client (retries included) and resolves once no request is in flight. */
  async pause(): Promise<void> {
    this.#gate ??= new Promise((resolve) => (this.#openGate = resolve));
    await waitFor('the clients to hold', () => this.#inFlight === 0, 60_000, 20);
  }

  /** Lets the clients send again. */
  resume(): void {
    this.#openGate?.();
    this.#gate = undefined;
    this.#openGate = undefined;
  }

  /**
   * Posts `events` as one request, once, even while the clients are held; the answer. They count
   * as acked only once sendUntilAccepted has had them answered 202.
   */
  async postOnce(events: readonly OracleEvent[]): Promise<IngestAnswer> {
    return this.#postNow(JSON.stringify(httpBodies(events)));
  }

  /**
   * Posts `events` as one request until it is answered 202, then counts them acked; gives up
   * after `giveUpAfterMs` (default: only once stop() has timed out).
   */
  async sendUntilAccepted(
    events: readonly OracleEvent[],
    giveUpAfterMs = Number.POSITIVE_INFINITY,
  ): Promise<void> {
    const body = JSON.stringify(httpBodies(events));
    const deadline = Date.now() + giveUpAfterMs;
    while ((await this.#post(body)) !== 202) {
      if (this.#abandoned || Date.now() > deadline) {
        throw new Error(`ingest did not accept ${events.length} events in time`);
      }
      await sleep(this.#options.retryDelayMs);
    }
    this.acked.push(...events);
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
      await this.sendUntilAccepted(this.events(this.#options.eventsPerRequest));
      if (this.#options.pauseMs) await sleep(this.#options.pauseMs);
    }
  }

  async #post(body: string): Promise<number> {
    while (this.#gate !== undefined) await this.#gate;
    this.#inFlight++;
    try {
      return (await this.#postNow(body)).status;
    } finally {
      this.#inFlight--;
    }
  }

  async #postNow(body: string): Promise<IngestAnswer> {
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
    const answer = { sentAt, answeredAt: Date.now(), status, retryAfter };
    this.answers.push(answer);
    return answer;
  }

  /**
   * `n` new events (none sent yet): mixed types, users and pages over the last three hours; the
   * user of each is `user(i)` when given.
   */
  events(n: number, user?: (i: number) => string): OracleEvent[] {
    const random = this.#random;
    const types = ['page_view', 'page_view', 'page_view', 'click', 'user.login', 'purchase'];
    const now = Date.now();
    return Array.from({ length: n }, (_, i) => {
      const type = types[Math.floor(random() * types.length)];
      const e: OracleEvent = {
        event_id: `${this.#runId}-${this.#next++}`,
        type,
        user_id: user?.(i) ?? `user-${Math.floor(random() * 500)}`,
        ts: now - 60_000 - Math.floor(random() * 3 * 3_600_000),
      };
      if (type === 'page_view' || type === 'click') e.page_url = `/p/${Math.floor(random() * 40)}`;
      return e;
    });
  }
}
