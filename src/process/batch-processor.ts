import pRetry, { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import type { TallyEvent } from '../event/types.ts';
import { isRetriable } from '../errors/tally-error.ts';
import type { BatchInput, BatchResult, BatchWriter } from '../store/batch-writer.ts';
import { LabelLimiter, type Metrics } from '../observability/metrics.ts';

export interface RetryPolicy {
  /** Give up after this long (ms); Infinity keeps retrying until stopped. */
  maxRetryTimeMs: number;
  minDelayMs: number;
  maxDelayMs: number;
}

export interface BatchProcessorDeps {
  writer: Pick<BatchWriter, 'write'>;
  metrics: Metrics;
  logger: Logger;
  /** Called after every commit with the events stored for the first time. */
  onCommit?: (events: readonly TallyEvent[]) => void;
}

/**
 * How many times one `process()` call lets its batch run into statement_timeout (TALLY_DB_TIMEOUT,
 * 60 s each, src/store/pool.ts) before giving the error to the caller, whatever the policy's time
 * budget. TRICKY: a timeout may pass (a busy server) or come back every time (a batch too large
 * for the limit), and the Kafka processor's budget is endless: without a bound, such a batch would
 * hold its partitions forever. A wait at a lock (a rebuild, a project move) is no timeout: the
 * pool's lock_timeout ends it first as TALLY_DB_UNAVAILABLE, retried without bound. After the
 * third, src/process/write-batch.ts splits the batch once, and further only while one half
 * commits (docs/errors.md). Over HTTP the 5 s budget ends after the first timeout anyway.
 */
export const MAX_STATEMENT_TIMEOUTS = 3;

/**
 * Runs one batch through the storage transaction, retrying retriable failures (PostgreSQL
 * down, deadlock, at most MAX_STATEMENT_TIMEOUTS statement timeouts) with capped exponential
 * backoff and jitter, and records the outcome in the metrics. Non-retriable failures and a fence
 * are returned to the caller at once.
 */
export class BatchProcessor {
  readonly #deps: BatchProcessorDeps;
  readonly #types = new LabelLimiter();
  readonly #services = new LabelLimiter();

  constructor(deps: BatchProcessorDeps) {
    this.#deps = deps;
  }

  async process(input: BatchInput, policy: RetryPolicy, signal?: AbortSignal): Promise<BatchResult> {
    const { metrics, logger } = this.#deps;
    const started = performance.now();
    let timeouts = 0;
    const result = await pRetry(
      async () => {
        try {
          return await this.#deps.writer.write(input);
        } catch (err) {
          const kind = errorKind(err);
          metrics.processingErrors.inc({ kind });
          if (!isRetriable(err)) throw new AbortError(err as Error);
          if (kind === 'TALLY_DB_TIMEOUT' && ++timeouts >= MAX_STATEMENT_TIMEOUTS) {
            logger.error(
              { err, timeouts },
              'batch timed out %d times; giving it back to the caller',
              timeouts,
            );
            throw new AbortError(err as Error);
          }
          throw err;
        }
      },
      {
        retries: Number.POSITIVE_INFINITY,
        factor: 2,
        minTimeout: policy.minDelayMs,
        maxTimeout: policy.maxDelayMs,
        randomize: true,
        maxRetryTime: policy.maxRetryTimeMs,
        signal,
        onFailedAttempt: ({ error, attemptNumber }) => {
          metrics.dbRetries.inc();
          logger.warn({ err: error, attempt: attemptNumber }, 'batch failed, retrying');
        },
      },
    );
    this.#record(result, performance.now() - started);
    this.#deps.onCommit?.(result.insertedEvents);
    return result;
  }

  #record(result: BatchResult, elapsedMs: number): void {
    const { metrics } = this.#deps;
    const now = Date.now();
    metrics.processingDuration.observe(elapsedMs / 1000);
    metrics.batchSize.observe(result.fresh.length);
    metrics.eventsStored.inc(result.inserted);
    if (result.insertedBots > 0) metrics.botEvents.inc(result.insertedBots);
    if (result.dropped > 0) metrics.droppedDeletedUserEvents.inc(result.dropped);
    metrics.lastCommit.set(now / 1000);
    const counts = new Map<string, { type: string; service: string; n: number }>();
    for (const e of result.insertedEvents) {
      const k = `${e.type}\u0000${e.service ?? ''}`;
      const c = counts.get(k);
      if (c) c.n += 1;
      else counts.set(k, { type: e.type, service: e.service ?? '', n: 1 });
      metrics.e2eLatency.observe((now - e.receivedAt) / 1000);
    }
    for (const c of counts.values()) {
      metrics.eventsProcessed.inc(
        { event_type: this.#types.value(c.type), service: this.#services.value(c.service) },
        c.n,
      );
    }
  }
}

/**
 * The `kind` label of a failed write: its error code, and `fenced` for a commit the fence refused
 * (docs/kafka.md). Counted here, where the write fails, so a fence is counted once even when a
 * rebalance has already made the caller give up waiting for this write.
 */
function errorKind(err: unknown): string {
  const code = (err as { code?: string }).code;
  return code === 'TALLY_FENCED' ? 'fenced' : (code ?? 'unknown');
}
