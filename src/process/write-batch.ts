import type { Producer } from '@platformatic/kafka';
import type { Logger } from 'pino';
import { TallyError } from '../errors/tally-error.ts';
import { deadLetterRows, rejectEvents, type PendingBatch } from './batch-builder.ts';
import type { BatchProcessor, RetryPolicy } from './batch-processor.ts';
import { publishDeadLetters } from './dead-letter-publisher.ts';

export interface WriteBatchDeps {
  processor: Pick<BatchProcessor, 'process'>;
  producer: Pick<Producer<Buffer, Buffer, Buffer, Buffer>, 'send'>;
  logger: Logger;
  retry: RetryPolicy;
  signal: AbortSignal;
}

/**
 * Writes one consumed batch: its poison messages to `<topic>.dlq` first, then ONE fenced
 * transaction (events, dead letters, positions). Retriable PostgreSQL failures are retried by the
 * BatchProcessor; a fence or an abort is thrown to the caller. When PostgreSQL refuses some event
 * for good, or the batch ran into statement_timeout MAX_STATEMENT_TIMEOUTS times, the events at
 * fault are found by bisection and dead-lettered (`db_rejected`, the error in the detail); the
 * others are committed on the way (without positions: a redelivery finds them already stored and
 * counts nothing twice). `batch.poison` ends up holding every dead letter written.
 */
export async function writeBatch(batch: PendingBatch, deps: WriteBatchDeps): Promise<void> {
  const { processor, retry, signal } = deps;
  if (batch.poison.length > 0) await publishDeadLetters(deps.producer, batch.poison);
  try {
    await processor.process(
      { events: batch.events, deadLetters: deadLetterRows(batch.poison), positions: batch.positions },
      retry,
      signal,
    );
    return;
  } catch (err) {
    if (!isRejection(err)) throw err;
    deps.logger.error(
      { err, events: batch.events.length },
      'PostgreSQL rejected a batch; isolating the bad events',
    );
    const bad = await isolateRejected(batch, [...batch.events.keys()], deps);
    const rejected = rejectEvents(batch, bad, err.message);
    await publishDeadLetters(deps.producer, rejected);
    batch.poison.push(...rejected);
  }
  await processor.process(
    { events: [], deadLetters: deadLetterRows(batch.poison), positions: batch.positions },
    retry,
    signal,
  );
}

/** Indices of the events PostgreSQL refuses, found by bisection; the others get committed. */
async function isolateRejected(
  batch: PendingBatch,
  indices: number[],
  deps: WriteBatchDeps,
): Promise<number[]> {
  if (indices.length === 0) return [];
  try {
    await deps.processor.process({ events: indices.map((i) => batch.events[i]) }, deps.retry, deps.signal);
    return [];
  } catch (err) {
    if (!isRejection(err)) throw err;
    if (indices.length === 1) return indices;
  }
  const mid = Math.ceil(indices.length / 2);
  return [
    ...(await isolateRejected(batch, indices.slice(0, mid), deps)),
    ...(await isolateRejected(batch, indices.slice(mid), deps)),
  ];
}

/**
 * PostgreSQL refused the write, or timed out on it as often as the BatchProcessor allows (it
 * gives a timeout back only then): retrying the same events as they are will not help.
 */
function isRejection(err: unknown): err is TallyError {
  return err instanceof TallyError && (err.code === 'TALLY_DB_ERROR' || err.code === 'TALLY_DB_TIMEOUT');
}
