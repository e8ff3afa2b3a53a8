import { findErrorBy } from '@platformatic/kafka';

const MIN_DELAY_MS = 100;
const MAX_DELAY_MS = 2_000;

/**
 * Whether another attempt may succeed: everything but options the client rejects and an answer
 * from the broker that says no for good (a protocol error it marks as not retriable, such as
 * INVALID_PARTITIONS). A broker still starting (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
 * a refused connection) is transient.
 */
export function isTransientKafkaError(err: unknown): boolean {
  if (!(err instanceof Error)) return true;
  if (findErrorBy(err, 'code', 'PLT_KFK_USER')) return false;
  const refusal = findErrorBy(err, 'code', 'PLT_KFK_PROTOCOL') as { canRetry?: boolean } | null;
  return refusal === null || refusal.canRetry === true;
}

export interface TransientRetryOptions {
  /** Give up once this long has passed since the first attempt (ms). */
  forMs: number;
  /** Stop retrying (and rethrow) once this says so, e.g. while shutting down. */
  isStopping?: () => boolean;
  /** Told of each failed attempt that will be retried. */
  onRetry?: (err: unknown, attempt: number) => void;
}

/**
 * Runs `attempt` until it succeeds, retrying transient Kafka errors with capped exponential
 * backoff and jitter for `forMs`. A refusal, a stop, or the deadline rethrows the last error.
 */
export async function retryTransient<T>(
  attempt: () => Promise<T>,
  options: TransientRetryOptions,
): Promise<T> {
  const deadline = Date.now() + options.forMs;
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isTransientKafkaError(err) || Date.now() >= deadline || options.isStopping?.() === true) throw err;
      options.onRetry?.(err, n);
    }
    const ceiling = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** n);
    const delay = Math.min(ceiling / 2 + Math.random() * (ceiling / 2), Math.max(0, deadline - Date.now()));
    await new Promise((r) => setTimeout(r, delay));
  }
}
