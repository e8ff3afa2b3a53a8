import type { Consumer, Producer } from '@platformatic/kafka';
import type { Logger } from 'pino';
import { TallyError } from '../errors/tally-error.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { PositionUpdate } from '../store/batch-writer.ts';
import { partitionKey } from '../store/positions.ts';
import type { AssignedPositions } from './assigned-positions.ts';
import type { PendingBatch } from './batch-builder.ts';
import type { BatchProcessor, RetryPolicy } from './batch-processor.ts';
import type { Rebalancer } from './rebalancer.ts';
import type { StallDetector } from './stall-detector.ts';
import { writeBatch } from './write-batch.ts';

export interface BatchCommitterDeps {
  processor: BatchProcessor;
  /** The dead-letter producer. */
  producer: Producer<Buffer, Buffer, Buffer, Buffer>;
  /** Kafka offsets are committed too, for lag monitoring only. */
  consumer: Pick<Consumer<Buffer, Buffer, Buffer, Buffer>, 'commit' | 'isActive' | 'closed'>;
  metrics: Pick<Metrics, 'deadLetters'>;
  logger: Logger;
  positions: AssignedPositions;
  rebalancer: Pick<Rebalancer, 'generation' | 'signal' | 'failed' | 'succeeded' | 'schedule'>;
  stalls: Pick<StallDetector, 'progressed'>;
}

/** How soon a Kafka offset commit put off while the member rejoins is tried again. */
const INACTIVE_RETRY_MS = 1000;

/**
 * Commits: writes one batch as one fenced transaction, then advances the positions the fence
 * expects and commits the Kafka offsets (after the database, for lag monitoring only). A batch
 * that fails or is refused by the fence starts a rebuild from the stored positions.
 */
export class BatchCommitter {
  readonly #retry: RetryPolicy;
  readonly #deps: BatchCommitterDeps;
  /** Kafka offsets not committed yet, newest per partition (monitoring only, see #commitOffsets). */
  readonly #unsent = new Map<
    string,
    { topic: string; partition: number; offset: bigint; leaderEpoch: number }
  >();
  #sending = false;
  /** The Kafka offset commit in flight (settled when none is). */
  #sent: Promise<void> = Promise.resolve();
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(retry: RetryPolicy, deps: BatchCommitterDeps) {
    this.#retry = retry;
    this.#deps = deps;
  }

  /** Never rejects: a failure schedules a rebuild instead. */
  async commit(batch: PendingBatch, generation: number): Promise<void> {
    const { processor, producer, metrics, logger, positions, rebalancer } = this.#deps;
    const signal = rebalancer.signal;
    try {
      await writeBatch(batch, { processor, producer, logger, retry: this.#retry, signal });
      for (const p of batch.poison) metrics.deadLetters.inc({ reason: p.reason });
      positions.advance(batch.positions);
      rebalancer.succeeded();
      this.#deps.stalls.progressed();
      this.#commitOffsets(batch.positions);
    } catch (err) {
      if (signal.aborted || generation !== rebalancer.generation) {
        logger.info('batch abandoned (partitions moved or stopping); it will be read again');
        return;
      }
      if (err instanceof TallyError && err.code === 'TALLY_FENCED') {
        // Counted by the BatchProcessor (kind="fenced"), like every failed write.
        logger.warn({ err }, 'commit refused by the fence: partitions moved; re-reading positions');
      } else {
        logger.error({ err }, 'batch failed; re-reading positions and retrying');
      }
      rebalancer.failed();
      rebalancer.schedule('batch failed');
    }
  }

  /**
   * Stopping: waits until the Kafka offsets of the batches written so far are committed, or
   * cannot be now (the member is rejoining: then they are left, as a crash would leave them;
   * the stored positions are what counts). Never rejects.
   */
  async flushOffsets(): Promise<void> {
    while (this.#sending) await this.#sent;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  /**
   * Commits the stored positions to Kafka too, only so that ordinary Kafka tools show the group's
   * lag (docs/kafka.md): one commit in flight at a time, the positions of later batches coalesced
   * into the next one, none while the member is rejoining, and only for partitions it still owns.
   *
   * TRICKY: the client answers a commit that a rebalance refuses by rejoining the group, then
   * retrying the commit (up to three times). A commit per batch meant a dozen such rejoins per
   * rebalance; the ones that reached the coordinator after the group had settled made the group
   * leader rejoin a stable group, which starts another rebalance, which refuses the next commits:
   * a rebalance a second for a minute after a rebalance storm (issue #23, rebalance-storm test).
   */
  #commitOffsets(updates: readonly Pick<PositionUpdate, 'topic' | 'partition' | 'next'>[]): void {
    const { consumer, logger, positions } = this.#deps;
    for (const p of updates)
      this.#unsent.set(partitionKey(p.topic, p.partition), {
        topic: p.topic,
        partition: p.partition,
        offset: BigInt(p.next),
        leaderEpoch: -1,
      });
    if (this.#sending || this.#unsent.size === 0 || consumer.closed) return;
    if (!consumer.isActive()) {
      if (this.#retryTimer === undefined)
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#commitOffsets([]);
        }, INACTIVE_RETRY_MS).unref();
      return;
    }
    // A partition that moved is its new owner's to commit.
    const offsets = [...this.#unsent].filter(([key]) => positions.has(key)).map(([, offset]) => offset);
    this.#unsent.clear();
    if (offsets.length === 0) return;
    this.#sending = true;
    this.#sent = consumer
      .commit({ offsets })
      .catch((err: unknown) => logger.debug({ err }, 'Kafka offset commit failed (monitoring only)'))
      .finally(() => {
        this.#sending = false;
        this.#commitOffsets([]);
      });
  }
}
