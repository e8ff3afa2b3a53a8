import {
  Consumer,
  ProduceAcks,
  Producer,
  type GroupAssignment,
  type Message,
  type MessagesStream,
} from '@platformatic/kafka';
import type pg from 'pg';
import type { Logger } from 'pino';
import { FETCH_MAX_BYTES } from '../kafka/client-options.ts';
import { retryTransient } from '../kafka/transient.ts';
import type { HealthCheck } from '../observability/health.ts';
import type { Metrics } from '../observability/metrics.ts';
import { AssignedPositions } from './assigned-positions.ts';
import { BatchCommitter } from './batch-committer.ts';
import { BatchFlusher } from './batch-flusher.ts';
import type { BatchProcessor, RetryPolicy } from './batch-processor.ts';
import { LagMonitor } from './lag-monitor.ts';
import { Rebalancer } from './rebalancer.ts';
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
  /** start() stops waiting for the group once this says so (the process is shutting down). */
  abortStart?: () => boolean;
}

type KafkaStream = MessagesStream<Buffer, Buffer, Buffer, Buffer>;

const STREAM_HIGH_WATER_MARK = 1024;
const FETCH_MAX_WAIT_MS = 500;
const DEFAULT_STALL_TIMEOUT_MS = 60_000;
/** How long start() keeps trying to join the group while Kafka answers with transient errors. */
const START_RETRY_FOR_MS = 60_000;
const JOIN_MARGIN_MS = 10_000;

/** How long the group waits for members to rejoin during a rebalance. */
function rebalanceTimeoutMs(sessionTimeoutMs: number): number {
  return Math.max(sessionTimeoutMs, 30_000);
}

/**
 * `tally process`: one member of the consumer group. It wires the consume loop (this file) to
 * rebalance handling (Rebalancer: a fresh stream at the positions stored in PostgreSQL per
 * assignment), batching (BatchFlusher) and commits (BatchCommitter: each batch one fenced
 * transaction), and watches its lag and progress (LagMonitor, StallDetector).
 */
export class KafkaProcessor {
  readonly #options: KafkaProcessorOptions;
  readonly #deps: KafkaProcessorDeps;
  readonly #consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  readonly #producer: Producer<Buffer, Buffer, Buffer, Buffer>;
  readonly #positions = new AssignedPositions();
  readonly #rebalancer: Rebalancer;
  readonly #batches: BatchFlusher;
  readonly #committer: BatchCommitter;
  readonly #lag: LagMonitor;
  readonly #stalls: StallDetector;
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
      rebalanceTimeout: rebalanceTimeoutMs(session),
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
    const isStopping = () => this.#stopping;
    this.#stalls = new StallDetector(
      { metrics: deps.metrics, logger: deps.logger },
      options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
    );
    this.#rebalancer = new Rebalancer(
      {
        groupId: options.groupId,
        topics: options.topics,
        retry: options.retry,
        joinTimeoutMs: rebalanceTimeoutMs(session) + session + JOIN_MARGIN_MS,
      },
      {
        consumer: this.#consumer,
        pool: deps.pool,
        metrics: deps.metrics,
        logger: deps.logger,
        positions: this.#positions,
        inFlight: () => this.#batches.inFlight,
        onNewGeneration: () => this.#batches.clear(),
        attach: (stream, generation) => this.#attach(stream, generation),
        isStopping,
      },
    );
    this.#committer = new BatchCommitter(options.retry, {
      processor: deps.processor,
      producer: this.#producer,
      consumer: this.#consumer,
      metrics: deps.metrics,
      logger: deps.logger,
      positions: this.#positions,
      rebalancer: this.#rebalancer,
      stalls: this.#stalls,
    });
    this.#batches = new BatchFlusher(
      {
        groupId: options.groupId,
        maxFutureSkewMs: options.maxFutureSkewMs,
        maxMessageBytes: options.maxMessageBytes,
        batchSize: options.batchSize,
        flushIntervalMs: options.flushIntervalMs,
        lingerMs: options.lingerMs,
      },
      {
        write: (batch, generation) => this.#committer.commit(batch, generation),
        generation: () => this.#rebalancer.generation,
        expected: (key) => this.#positions.expected(key),
        pause: () => this.#rebalancer.stream?.pause(),
        resume: () => this.#rebalancer.stream?.resume(),
        isStopping,
      },
    );
    this.#lag = new LagMonitor({
      consumer: this.#consumer,
      metrics: deps.metrics,
      logger: deps.logger,
      positions: () => this.#positions.snapshot(),
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
      this.#rebalancer.schedule('assignment');
    });
    this.#consumer.on('consumer:heartbeat:error', ({ error }) =>
      this.#deps.logger.debug({ err: error }, 'heartbeat failed'),
    );
    // The client's heartbeats stopped without an error (a rejoin that never completed): nothing
    // else would say so, and the member would sit out of the group unread. Rejoin from a rebuild.
    this.#consumer.on('consumer:heartbeat:stalled', ({ stalledFor, lastError }) => {
      if (this.#stopping) return;
      this.#deps.logger.warn({ stalledFor, err: lastError }, 'consumer heartbeats stalled; rejoining');
      this.#rebalancer.failed();
      this.#rebalancer.schedule('heartbeats stalled');
    });
    // TRICKY: a rejoin that fails (Kafka unreachable) is reported as the consumer's 'error' event
    // and ends the heartbeats; unhandled, it would crash the process. Rejoin from a rebuild.
    this.#consumer.on('error', (err: Error) => {
      if (this.#stopping) return;
      this.#deps.logger.warn({ err }, 'consumer group membership lost; rejoining');
      this.#rebalancer.failed();
      this.#rebalancer.schedule('membership lost');
    });
    // The first consume() joins the group; the join event then replaces this stream with one that
    // starts at the stored positions. Nothing is read from it: its generation is already stale.
    // It starts at the end of the log so that it fetches (and drops) as little as possible.
    // A broker that has just started answers the first join with NOT_COORDINATOR (or refuses the
    // connection) for a few seconds: a processor started with it must wait, not exit.
    const first = await retryTransient(
      () => this.#consumer.consume(this.#rebalancer.streamOptions([], false)),
      {
        forMs: START_RETRY_FOR_MS,
        isStopping: () => this.#stopping || this.#deps.abortStart?.() === true,
        onRetry: (err, attempt) =>
          this.#deps.logger.warn({ err, attempt }, 'joining the consumer group failed; retrying'),
      },
    );
    this.#attach(first, -1);
    if (!this.#rebalancer.adoptFirst(first)) await first.close();
    await this.#rebalancer.settled();
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
      this.#rebalancer.stream?.pause();
      const giveUp = setTimeout(
        () => this.#rebalancer.abortInFlight(),
        this.#options.stopTimeoutMs ?? 20_000,
      );
      try {
        await this.#rebalancer.settled();
        await this.#batches.inFlight;
        this.#batches.flush(true);
        await this.#batches.inFlight;
        await this.#committer.flushOffsets();
      } finally {
        clearTimeout(giveUp);
      }
      await this.#rebalancer.stream?.close().catch(() => undefined);
      await Promise.allSettled([this.#consumer.close(), this.#producer.close()]);
    })();
    return this.#stopped;
  }

  /** The consume loop: every stream's messages go to the batch of the current generation. */
  #attach(stream: KafkaStream, generation: number): void {
    stream.on('data', (message: Message<Buffer, Buffer, Buffer, Buffer>) =>
      this.#onMessage(message, generation),
    );
    stream.on('error', (err: Error) => {
      if (generation !== this.#rebalancer.generation || this.#stopping) return;
      this.#deps.logger.warn({ err }, 'consumer stream failed; restarting it');
      this.#rebalancer.failed();
      this.#rebalancer.schedule('stream error');
    });
    // A stream that ends on its own (not replaced, not stopping) would leave its partitions unread.
    stream.on('close', () => {
      if (generation !== this.#rebalancer.generation || this.#stopping || this.#rebalancer.stream !== stream)
        return;
      this.#deps.logger.warn('consumer stream closed; restarting it');
      this.#rebalancer.schedule('stream closed');
    });
  }

  #onMessage(message: Message<Buffer, Buffer, Buffer, Buffer>, generation: number): void {
    if (generation !== this.#rebalancer.generation || this.#stopping) return;
    // TRICKY: a stream may still deliver a partition that a newer assignment took away.
    if (!this.#positions.assigned(message.topic, message.partition)) return;
    this.#batches.add(message);
  }
}

function describe(assignments: readonly GroupAssignment[]): string {
  return assignments.map((a) => `${a.topic}[${a.partitions.join(',')}]`).join(' ');
}
