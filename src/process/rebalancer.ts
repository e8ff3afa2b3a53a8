import {
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  type Consumer,
  type GroupAssignment,
  type MessagesStream,
} from '@platformatic/kafka';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';
import { withTimeout } from '../util/with-timeout.ts';
import { partitionKey, readPositions, type TopicPartition } from '../store/positions.ts';
import type { AssignedPositions } from './assigned-positions.ts';
import type { RetryPolicy } from './batch-processor.ts';

type KafkaStream = MessagesStream<Buffer, Buffer, Buffer, Buffer>;

export interface RebalancerOptions {
  groupId: string;
  topics: readonly string[];
  /** Backoff while PostgreSQL cannot be read. */
  retry: RetryPolicy;
  /** Longer than a legitimate join can take (the rebalance timeout). */
  joinTimeoutMs: number;
}

export interface RebalancerDeps {
  consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  pool: pg.Pool;
  metrics: Pick<Metrics, 'dbRetries'>;
  logger: Logger;
  positions: AssignedPositions;
  /** The batch being written, which a rebuild waits for. */
  inFlight: () => Promise<void> | undefined;
  /** A new generation began: what was read for the old one is dropped. */
  onNewGeneration: () => void;
  /** Listens to a new stream; its messages count only while `generation` is current. */
  attach: (stream: KafkaStream, generation: number) => void;
  isStopping: () => boolean;
}

const REBUILD_MIN_DELAY_MS = 100;
const REBUILD_MAX_DELAY_MS = 5000;
const CLOSE_TIMEOUT_MS = 5000;

/**
 * Rebalance handling: each assignment (and each refused commit or failed stream) starts a new
 * generation, in which a fresh stream reads from the positions stored in PostgreSQL. Rebuilds
 * are serialised, each waits for the batch in flight, and repeated failures back off.
 */
export class Rebalancer {
  readonly #options: RebalancerOptions;
  readonly #deps: RebalancerDeps;
  /** Bumped by every rebuild: messages of older streams are ignored. */
  #generation = 0;
  #stream: KafkaStream | undefined;
  #abort = new AbortController();
  #rebuilds: Promise<void> = Promise.resolve();
  #failures = 0;

  constructor(options: RebalancerOptions, deps: RebalancerDeps) {
    this.#options = options;
    this.#deps = deps;
  }

  get generation(): number {
    return this.#generation;
  }

  /** The stream of the current generation (or the one start() opened to join). */
  get stream(): KafkaStream | undefined {
    return this.#stream;
  }

  /** Aborted when the generation ends: the batch in flight stops retrying. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Resolves once every scheduled rebuild has run. */
  settled(): Promise<void> {
    return this.#rebuilds;
  }

  /** start()'s joining stream, unless a rebuild already replaced it; false when it is not needed. */
  adoptFirst(stream: KafkaStream): boolean {
    if (this.#stream !== undefined) return false;
    this.#stream = stream;
    return true;
  }

  /** Gives up on the batch in flight (stop() past its deadline). */
  abortInFlight(): void {
    this.#abort.abort();
  }

  /** Something failed: the next rebuild backs off a little longer. */
  failed(): void {
    this.#failures += 1;
  }

  /** A batch committed: rebuilds start at once again. */
  succeeded(): void {
    this.#failures = 0;
  }

  /** Serialises rebuilds: each one waits for the previous and for the batch in flight. */
  schedule(reason: string): void {
    if (this.#deps.isStopping()) return;
    const generation = ++this.#generation;
    // Stop retrying the batch in flight: its partitions may have moved.
    this.#abort.abort();
    this.#abort = new AbortController();
    this.#deps.onNewGeneration();
    this.#rebuilds = this.#rebuilds
      .then(() => this.#rebuild(generation, reason))
      .catch((err: unknown) => {
        this.#deps.logger.error({ err }, 'could not restart consuming (Kafka unreachable?); retrying');
        // Backs off (see #rebuild) instead of hammering an unreachable broker.
        this.#failures += 1;
        if (generation === this.#generation) this.schedule('rebuild failed');
      });
  }

  /** `fromStart`: partitions with no stored position start at the beginning of the log. */
  streamOptions(offsets: { topic: string; partition: number; offset: bigint }[], fromStart = true) {
    return {
      topics: [...this.#options.topics],
      mode: MessagesStreamModes.MANUAL,
      offsets,
      fallbackMode: fromStart ? MessagesStreamFallbackModes.EARLIEST : MessagesStreamFallbackModes.LATEST,
      autocommit: false,
    };
  }

  async #rebuild(generation: number, reason: string): Promise<void> {
    const { consumer, logger, positions } = this.#deps;
    await this.#deps.inFlight();
    if (this.#failures > 0) {
      const ceiling = Math.min(REBUILD_MAX_DELAY_MS, REBUILD_MIN_DELAY_MS * 2 ** this.#failures);
      await new Promise((r) => setTimeout(r, ceiling / 2 + Math.random() * (ceiling / 2)));
    }
    if (this.#superseded(generation)) return;
    if (!consumer.isActive()) {
      // The join announces the new assignment, which schedules the rebuild that reads positions.
      // Bounded, so that a join that never answers cannot hold up every later rebuild.
      await withTimeout(
        consumer.joinGroup({}),
        this.#options.joinTimeoutMs,
        () => new Error('joining the group timed out'),
      );
      return;
    }
    const partitions = assigned(consumer.assignments ?? [], this.#options.topics);
    const stored = await this.#readPositions(partitions, generation);
    if (stored === undefined || this.#superseded(generation)) return;
    positions.replace(
      new Map(
        partitions.map((p) => [
          partitionKey(p.topic, p.partition),
          stored.get(partitionKey(p.topic, p.partition)) ?? null,
        ]),
      ),
    );
    const offsets = partitions
      .filter((p) => stored.has(partitionKey(p.topic, p.partition)))
      .map((p) => ({ ...p, offset: BigInt(stored.get(partitionKey(p.topic, p.partition)) ?? 0) }));
    // TRICKY: create the new stream before closing the old one. Closing first would untrack the
    // topics and make the next consume() rejoin the group, which starts another rebalance.
    const old = this.#stream;
    const stream = await consumer.consume(this.streamOptions(offsets));
    this.#deps.attach(stream, generation);
    this.#stream = stream;
    if (old !== undefined) {
      old.pause();
      // TRICKY: rebuilds are serialised, so one that waits forever would leave every later
      // assignment unread, silently (issue #19). The old stream is done with either way.
      await withTimeout(old.close(), CLOSE_TIMEOUT_MS, () => new Error('the old stream did not close')).catch(
        (err: unknown) => logger.warn({ err }, 'closing the old stream failed; going on without it'),
      );
    }
    logger.info(
      { reason, positions: Object.fromEntries(positions.snapshot()) },
      'consuming from stored positions',
    );
  }

  #superseded(generation: number): boolean {
    return generation !== this.#generation || this.#deps.isStopping();
  }

  /** Reads the stored positions, retrying while PostgreSQL is unreachable; undefined when superseded. */
  async #readPositions(
    partitions: TopicPartition[],
    generation: number,
  ): Promise<Map<string, number> | undefined> {
    const { retry } = this.#options;
    for (let attempt = 0; ; attempt++) {
      try {
        return await readPositions(this.#deps.pool, this.#options.groupId, partitions);
      } catch (err) {
        if (this.#superseded(generation)) return undefined;
        this.#deps.metrics.dbRetries.inc();
        this.#deps.logger.warn({ err, attempt }, 'reading stored positions failed; retrying');
        const ceiling = Math.min(retry.maxDelayMs, retry.minDelayMs * 2 ** attempt);
        await new Promise((r) => setTimeout(r, ceiling / 2 + Math.random() * (ceiling / 2)));
      }
    }
  }
}

function assigned(assignments: readonly GroupAssignment[], topics: readonly string[]): TopicPartition[] {
  return assignments
    .filter((a) => topics.includes(a.topic))
    .flatMap((a) => a.partitions.map((partition) => ({ topic: a.topic, partition })));
}
