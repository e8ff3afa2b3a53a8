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
 * counts nothing twice). A timeout that is not the events' (both halves of a split time out) is
 * thrown instead, with nothing dead-lettered for it. `batch.poison` ends up holding every dead
 * letter written.
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
    const bad = await isolateRejected(batch, [...batch.events.keys()], err, deps);
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

/**
 * Indices of the events to dead-letter among `indices`, which failed as one transaction with
 * `failure`: found by bisection, committing every half that goes through on the way.
 *
 * TRICKY: a refusal (TALLY_DB_ERROR) belongs to an event, so it is chased down to the event. A
 * timeout may not: lock waits fail before it (pool.ts's lock_timeout), but an overloaded server
 * times out whatever it is given. So when both halves of a split time out, the timeout is thrown,
 * not split further (which would dead-letter every event, after hours of attempts): the caller
 * re-reads the batch with backoff, and finds what committed meanwhile already stored. An event is
 * dead-lettered for a timeout only when its sibling half committed: the same server did that
 * work within the limit, so the time is this event's.
 */
async function isolateRejected(
  batch: PendingBatch,
  indices: number[],
  failure: TallyError,
  deps: WriteBatchDeps,
  siblingCommitted = false,
): Promise<number[]> {
  if (indices.length <= 1) {
    if (isTimeout(failure) && !siblingCommitted) throw failure;
    return indices;
  }
  const mid = Math.ceil(indices.length / 2);
  const halves = [indices.slice(0, mid), indices.slice(mid)];
  const failures = [await attempt(batch, halves[0], deps), await attempt(batch, halves[1], deps)];
  if (isTimeout(failures[0]) && isTimeout(failures[1])) throw failures[0];
  const bad: number[] = [];
  for (const [i, half] of halves.entries()) {
    const err = failures[i];
    if (err !== undefined)
      bad.push(...(await isolateRejected(batch, half, err, deps, failures[1 - i] === undefined)));
  }
  return bad;
}

/** Writes the events at `indices` alone; the rejection they failed with, if any. */
async function attempt(
  batch: PendingBatch,
  indices: number[],
  deps: WriteBatchDeps,
): Promise<TallyError | undefined> {
  try {
    await deps.processor.process({ events: indices.map((i) => batch.events[i]) }, deps.retry, deps.signal);
    return undefined;
  } catch (err) {
    if (!isRejection(err)) throw err;
    return err;
  }
}

function isTimeout(err: TallyError | undefined): err is TallyError {
  return err?.code === 'TALLY_DB_TIMEOUT';
}

/**
 * PostgreSQL refused the write, or timed out on it as often as the BatchProcessor allows (it
 * gives a timeout back only then): retrying the same events as they are will not help.
 */
function isRejection(err: unknown): err is TallyError {
  return err instanceof TallyError && (err.code === 'TALLY_DB_ERROR' || err.code === 'TALLY_DB_TIMEOUT');
}
