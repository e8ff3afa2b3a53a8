import type { Consumer, Producer } from '@platformatic/kafka';
import type { Logger } from 'pino';
import { TallyError } from '../errors/tally-error.ts';
import type { Metrics } from '../observability/metrics.ts';
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
  consumer: Pick<Consumer<Buffer, Buffer, Buffer, Buffer>, 'commit'>;
  metrics: Pick<Metrics, 'deadLetters'>;
  logger: Logger;
  positions: AssignedPositions;
  rebalancer: Pick<Rebalancer, 'generation' | 'signal' | 'failed' | 'succeeded' | 'schedule'>;
  stalls: Pick<StallDetector, 'progressed'>;
}

/**
 * Commits: writes one batch as one fenced transaction, then advances the positions the fence
 * expects and commits the Kafka offsets (after the database, for lag monitoring only). A batch
 * that fails or is refused by the fence starts a rebuild from the stored positions.
 */
export class BatchCommitter {
  readonly #retry: RetryPolicy;
  readonly #deps: BatchCommitterDeps;

  constructor(retry: RetryPolicy, deps: BatchCommitterDeps) {
    this.#retry = retry;
    this.#deps = deps;
  }

  /** Never rejects: a failure schedules a rebuild instead. */
  async commit(batch: PendingBatch, generation: number): Promise<void> {
    const { processor, producer, consumer, metrics, logger, positions, rebalancer } = this.#deps;
    const signal = rebalancer.signal;
    try {
      await writeBatch(batch, { processor, producer, logger, retry: this.#retry, signal });
      for (const p of batch.poison) metrics.deadLetters.inc({ reason: p.reason });
      positions.advance(batch.positions);
      rebalancer.succeeded();
      this.#deps.stalls.progressed();
      consumer
        .commit({
          offsets: batch.positions.map((p) => ({
            topic: p.topic,
            partition: p.partition,
            offset: BigInt(p.next),
            leaderEpoch: -1,
          })),
        })
        .catch((err: unknown) => logger.debug({ err }, 'Kafka offset commit failed (monitoring only)'));
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
}
