import {
  Consumer,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  ProduceAcks,
  Producer,
  type GroupAssignment,
  type Message,
  type MessagesStream,
} from '@platformatic/kafka';
import type pg from 'pg';
import type { Logger } from 'pino';
import { TallyError } from '../errors/tally-error.ts';
import { FETCH_MAX_BYTES } from '../kafka/client-options.ts';
import type { HealthCheck } from '../observability/health.ts';
import type { Metrics } from '../observability/metrics.ts';
import { partitionKey, readPositions, type TopicPartition } from '../store/positions.ts';
import { BatchBuilder, type PendingBatch } from './batch-builder.ts';
import type { BatchProcessor, RetryPolicy } from './batch-processor.ts';
import { writeBatch } from './write-batch.ts';
import { LagMonitor } from './lag-monitor.ts';
import { StallDetector } from './stall-detector.ts';

export interface KafkaProcessorOptions {
  brokers: string[];
  groupId: string;
  /** KAFKA_TOPIC plus TALLY_EXTRA_TOPICS. */
  topics: string[];
  clientId: string;
  batchSize: number;
  /** FLUSH_INTERVAL_SEC (the seeds' flush interval): the longest a new batch lingers. */
  flushIntervalMs: number;
  /** TALLY_BATCH_LINGER_MS: with no write in flight, how long a new batch waits for more messages. */
  lingerMs: number;
  sessionTimeoutMs: number;
  maxFutureSkewMs: number;
  maxMessageBytes: number;
  retry: RetryPolicy;
  /** How long stop() waits for the in-flight batch when PostgreSQL is down. */
  stopTimeoutMs?: number;
  /** With lag and no progress for this long the processor reports itself stalled (default 60 s). */
  stallTimeoutMs?: number;
}

export interface KafkaProcessorDeps {
  pool: pg.Pool;
  processor: BatchProcessor;
  metrics: Metrics;
  logger: Logger;
}

const STREAM_HIGH_WATER_MARK = 1024;
const FETCH_MAX_WAIT_MS = 500;
const REBUILD_MIN_DELAY_MS = 100;
const REBUILD_MAX_DELAY_MS = 5000;
const DEFAULT_STALL_TIMEOUT_MS = 60_000;

/**
 * `tally process`: one member of the consumer group. Each assignment (and each refused commit)
 * starts a fresh stream at the offsets stored in PostgreSQL; messages accumulate into batches,
 * and each batch is one fenced transaction. A batch is written as soon as the previous write is
 * done (after a short linger when nothing was being written), so batches grow with load and a
 * quiet processor commits within milliseconds; BATCH_SIZE and FLUSH_INTERVAL_SEC bound them.
 * Kafka offsets are committed after the database commit, for lag monitoring only.
 */
export class KafkaProcessor {
  readonly #options: KafkaProcessorOptions;
  readonly #deps: KafkaProcessorDeps;
  readonly #consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  readonly #producer: Producer<Buffer, Buffer, Buffer, Buffer>;
  readonly #builder: BatchBuilder;
  readonly #lag: LagMonitor;
  readonly #stalls: StallDetector;
  /** Bumped by every rebuild: messages of older streams are ignored. */
  #generation = 0;
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  /** Stored next offset per assigned partition (null: nothing stored yet): the fence's expectation. */
  #expected = new Map<string, number | null>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #abort = new AbortController();
  #rebuilds: Promise<void> = Promise.resolve();
  #rebuildFailures = 0;
  #stopping = false;
  #stopped: Promise<void> | undefined;

  constructor(options: KafkaProcessorOptions, deps: KafkaProcessorDeps) {
    this.#options = options;
    this.#deps = deps;
    const session = options.sessionTimeoutMs;
    this.#consumer = new Consumer({
      clientId: options.clientId,
      bootstrapBrokers: options.brokers,
      groupId: options.groupId,
      sessionTimeout: session,
      heartbeatInterval: Math.max(100, Math.floor(session / 4)),
      rebalanceTimeout: Math.max(session, 30_000),
      autocommit: false,
      maxWaitTime: FETCH_MAX_WAIT_MS,
      // One fetch is what the processor buffers beyond its two batches (FETCH_MAX_BYTES).
      maxBytes: FETCH_MAX_BYTES,
      highWaterMark: Math.min(STREAM_HIGH_WATER_MARK, options.batchSize),
      retries: 3,
      retryDelay: 250,
    });
    this.#producer = new Producer({
      clientId: `${options.clientId}-dlq`,
      bootstrapBrokers: options.brokers,
      idempotent: true,
      acks: ProduceAcks.ALL,
      // TRICKY: the idempotent producer retried forever with retries 0 (kafka-notes.md).
      retries: 3,
      retryDelay: 250,
    });
    this.#builder = new BatchBuilder({
      groupId: options.groupId,
      maxFutureSkewMs: options.maxFutureSkewMs,
      maxMessageBytes: options.maxMessageBytes,
    });
    this.#stalls = new StallDetector(
      { metrics: deps.metrics, logger: deps.logger },
      options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
    );
    this.#lag = new LagMonitor({
      consumer: this.#consumer,
      metrics: deps.metrics,
      logger: deps.logger,
      positions: () => this.#expected,
      stalls: this.#stalls,
      pool: deps.pool,
      groupId: options.groupId,
      topics: options.topics,
    });
  }

  /** Joins the group; resolves once the first stream runs. */
  async start(): Promise<void> {
    this.#consumer.on('consumer:group:join', (payload) => {
      this.#deps.logger.info(
        { generation: payload.generationId, assignments: describe(payload.assignments ?? []) },
        'partitions assigned',
      );
      this.#scheduleRebuild('assignment');
    });
    this.#consumer.on('consumer:heartbeat:error', ({ error }) =>
      this.#deps.logger.debug({ err: error }, 'heartbeat failed'),
    );
    // TRICKY: a rejoin that fails (Kafka unreachable) is reported as the consumer's 'error' event
    // and ends the heartbeats; unhandled, it would crash the process. Rejoin from a rebuild.
    this.#consumer.on('error', (err: Error) => {
      if (this.#stopping) return;
      this.#deps.logger.warn({ err }, 'consumer group membership lost; rejoining');
      this.#rebuildFailures += 1;
      this.#scheduleRebuild('membership lost');
    });
    // The first consume() joins the group; the join event then replaces this stream with one that
    // starts at the stored positions. Nothing is read from it: its generation is already stale.
    // It starts at the end of the log so that it fetches (and drops) as little as possible.
    const first = await this.#consumer.consume(this.#streamOptions([], false));
    this.#attach(first, -1);
    if (this.#stream === undefined) this.#stream = first;
    else await first.close();
    await this.#rebuilds;
    this.#lag.start();
  }

  /** Down while not a live group member, and while stalled (lag and no progress, see StallDetector). */
  readonly health: HealthCheck = {
    name: 'kafka',
    check: () =>
      Promise.resolve(this.#consumer.isActive() && this.#stalls.stalledReason === undefined ? 'ok' : 'down'),
  };

  /** Why the processor cannot make progress, or undefined while it does. */
  get stalledReason(): string | undefined {
    return this.#stalls.stalledReason;
  }

  /** Commits the batch in flight and what is buffered, leaves the group, closes the clients. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      this.#lag.stop();
      this.#stream?.pause();
      const giveUp = setTimeout(() => this.#abort.abort(), this.#options.stopTimeoutMs ?? 20_000);
      try {
        await this.#rebuilds;
        await this.#flushing;
        this.#flush(true);
        await this.#flushing;
      } finally {
        clearTimeout(giveUp);
      }
      await this.#stream?.close().catch(() => undefined);
      await Promise.allSettled([this.#consumer.close(), this.#producer.close()]);
    })();
    return this.#stopped;
  }

  /** `fromStart`: partitions with no stored position start at the beginning of the log. */
  #streamOptions(offsets: { topic: string; partition: number; offset: bigint }[], fromStart = true) {
    return {
      topics: this.#options.topics,
      mode: MessagesStreamModes.MANUAL,
      offsets,
      fallbackMode: fromStart ? MessagesStreamFallbackModes.EARLIEST : MessagesStreamFallbackModes.LATEST,
      autocommit: false,
    };
  }

  #attach(stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>, generation: number): void {
    stream.on('data', (message: Message<Buffer, Buffer, Buffer, Buffer>) =>
      this.#onMessage(message, generation),
    );
    stream.on('error', (err: Error) => {
      if (generation !== this.#generation || this.#stopping) return;
      this.#deps.logger.warn({ err }, 'consumer stream failed; restarting it');
      this.#rebuildFailures += 1;
      this.#scheduleRebuild('stream error');
    });
    // A stream that ends on its own (not replaced, not stopping) would leave its partitions unread.
    stream.on('close', () => {
      if (generation !== this.#generation || this.#stopping || this.#stream !== stream) return;
      this.#deps.logger.warn('consumer stream closed; restarting it');
      this.#scheduleRebuild('stream closed');
    });
  }

  #onMessage(message: Message<Buffer, Buffer, Buffer, Buffer>, generation: number): void {
    if (generation !== this.#generation || this.#stopping) return;
    // TRICKY: a stream may still deliver a partition that a newer assignment took away.
    if (!this.#expected.has(partitionKey(message.topic, message.partition))) return;
    this.#builder.add(message);
    if (this.#builder.size < this.#options.batchSize) {
      // While a write is in flight the batch grows until that write is done (#flush's finally).
      if (!this.#flushing) this.#timer ??= setTimeout(() => this.#flush(false), this.#lingerMs());
    } else if (this.#flushing) {
      // Backpressure: one batch is being written (or retried) and the next one is full, so the
      // stream fetches nothing more until the write is done. Memory stays at two batches plus
      // what the stream holds: its buffer and the fetch in flight (see FETCH_MAX_BYTES).
      this.#stream?.pause();
    } else {
      this.#flush(false);
    }
  }

  #lingerMs(): number {
    return Math.min(this.#options.lingerMs, this.#options.flushIntervalMs);
  }

  #flush(final: boolean): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#flushing || this.#builder.size === 0) return;
    const generation = this.#generation;
    // The next batch accumulates while this one is written; it is taken (with the positions this
    // one committed as its expectations) only once this one is done.
    const batch = this.#builder.take((key) => this.#expected.get(key) ?? null);
    this.#flushing = this.#commit(batch, generation).finally(() => {
      this.#flushing = undefined;
      if (final || this.#stopping || generation !== this.#generation) return;
      // What arrived during the write has waited for it already: write it now (group commit).
      this.#flush(false);
      this.#stream?.resume();
    });
  }

  async #commit(batch: PendingBatch, generation: number): Promise<void> {
    const { processor, metrics, logger } = this.#deps;
    const signal = this.#abort.signal;
    try {
      await writeBatch(batch, {
        processor,
        producer: this.#producer,
        logger,
        retry: this.#options.retry,
        signal,
      });
      for (const p of batch.poison) metrics.deadLetters.inc({ reason: p.reason });
      for (const p of batch.positions) this.#expected.set(partitionKey(p.topic, p.partition), p.next);
      this.#rebuildFailures = 0;
      this.#stalls.progressed();
      this.#consumer
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
      if (signal.aborted || generation !== this.#generation) {
        logger.info('batch abandoned (partitions moved or stopping); it will be read again');
        return;
      }
      if (err instanceof TallyError && err.code === 'TALLY_FENCED') {
        // Counted by the BatchProcessor (kind="fenced"), like every failed write.
        logger.warn({ err }, 'commit refused by the fence: partitions moved; re-reading positions');
      } else {
        logger.error({ err }, 'batch failed; re-reading positions and retrying');
      }
      this.#rebuildFailures += 1;
      this.#scheduleRebuild('batch failed');
    }
  }

  /** Serialises rebuilds: each one waits for the previous and for the batch in flight. */
  #scheduleRebuild(reason: string): void {
    if (this.#stopping) return;
    const generation = ++this.#generation;
    // Stop retrying the batch in flight: its partitions may have moved.
    this.#abort.abort();
    this.#abort = new AbortController();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#builder.clear();
    this.#rebuilds = this.#rebuilds
      .then(() => this.#rebuild(generation, reason))
      .catch((err: unknown) => {
        this.#deps.logger.error({ err }, 'could not restart consuming (Kafka unreachable?); retrying');
        // Backs off (see #rebuild) instead of hammering an unreachable broker.
        this.#rebuildFailures += 1;
        if (generation === this.#generation) this.#scheduleRebuild('rebuild failed');
      });
  }

  async #rebuild(generation: number, reason: string): Promise<void> {
    await this.#flushing;
    if (this.#rebuildFailures > 0) {
      const ceiling = Math.min(REBUILD_MAX_DELAY_MS, REBUILD_MIN_DELAY_MS * 2 ** this.#rebuildFailures);
      await new Promise((r) => setTimeout(r, ceiling / 2 + Math.random() * (ceiling / 2)));
    }
    if (generation !== this.#generation || this.#stopping) return;
    if (!this.#consumer.isActive()) {
      // The join announces the new assignment, which schedules the rebuild that reads positions.
      await this.#consumer.joinGroup({});
      return;
    }
    const partitions = assigned(this.#consumer.assignments ?? [], this.#options.topics);
    const stored = await this.#readPositions(partitions, generation);
    if (stored === undefined || generation !== this.#generation || this.#stopping) return;
    this.#expected = new Map(
      partitions.map((p) => [
        partitionKey(p.topic, p.partition),
        stored.get(partitionKey(p.topic, p.partition)) ?? null,
      ]),
    );
    const offsets = partitions
      .filter((p) => stored.has(partitionKey(p.topic, p.partition)))
      .map((p) => ({ ...p, offset: BigInt(stored.get(partitionKey(p.topic, p.partition)) ?? 0) }));
    // TRICKY: create the new stream before closing the old one. Closing first would untrack the
    // topics and make the next consume() rejoin the group, which starts another rebalance.
    const old = this.#stream;
    const stream = await this.#consumer.consume(this.#streamOptions(offsets));
    this.#attach(stream, generation);
    this.#stream = stream;
    old?.pause();
    await old?.close().catch((err: unknown) => this.#deps.logger.debug({ err }, 'closing old stream failed'));
    this.#deps.logger.info(
      { reason, positions: Object.fromEntries(this.#expected) },
      'consuming from stored positions',
    );
  }

  /** Reads the stored positions, retrying while PostgreSQL is unreachable; undefined when superseded. */
  async #readPositions(
    partitions: TopicPartition[],
    generation: number,
  ): Promise<Map<string, number> | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await readPositions(this.#deps.pool, this.#options.groupId, partitions);
      } catch (err) {
        if (generation !== this.#generation || this.#stopping) return undefined;
        this.#deps.metrics.dbRetries.inc();
        this.#deps.logger.warn({ err, attempt }, 'reading stored positions failed; retrying');
        const ceiling = Math.min(
          this.#options.retry.maxDelayMs,
          this.#options.retry.minDelayMs * 2 ** attempt,
        );
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

function describe(assignments: readonly GroupAssignment[]): string {
  return assignments.map((a) => `${a.topic}[${a.partitions.join(',')}]`).join(' ');
}
