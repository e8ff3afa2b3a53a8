import type { BaseOptions } from '@platformatic/kafka';

/**
 * Connection settings shared by Tally's Kafka clients. Short timeouts and few retries so that
 * an unreachable broker surfaces as an error within seconds instead of a hang: callers that
 * must keep trying (the processor) retry on their own, with backoff.
 * TRICKY: an idempotent producer needs retries >= 2 (with 0 it retried forever in our tests).
 */
export function kafkaClientOptions(brokers: readonly string[], clientId: string): BaseOptions {
  return {
    clientId,
    bootstrapBrokers: [...brokers],
    connectTimeout: 2_000,
    timeout: 2_000,
    retries: 2,
    retryDelay: 250,
  };
}
