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

/**
 * Most bytes per fetch for Tally's consumers (the library's default is 50 MB).
 * TRICKY: highWaterMark and pause() only decide whether the stream sends the NEXT fetch; every
 * record of a fetch response is decoded into a Message and pushed into the stream's buffer at
 * once (MessagesStream#pushRecords ignores push() returning false). So one fetch is what a
 * consumer buffers beyond what it is working on. The limit counts bytes on the wire, i.e.
 * compressed, so a large limit means many times its size in heap; 256 KiB is about one
 * BATCH_SIZE of compressed events (figures: docs/benchmarks.md). Kafka still returns a larger
 * first record batch whole, so big events are not starved.
 */
export const FETCH_MAX_BYTES = 256 * 1024;
