import { Admin, Producer, compatibilityPartitioner, stringSerializers } from '@platformatic/kafka';
import type { MessageToProduce } from '@platformatic/kafka';
import type { Logger } from 'pino';
import type { TallyEvent } from '../event/types.ts';
import { TallyError } from '../errors/tally-error.ts';
import type { EventSink } from './ingest-service.ts';
import { MicroBatcher } from './micro-batcher.ts';
import type { HealthCheck } from '../observability/health.ts';
import type { Metrics } from '../observability/metrics.ts';
import { kafkaClientOptions } from '../kafka/client-options.ts';
import { withTimeout } from '../util/with-timeout.ts';
import { encodeEvent } from '../kafka/codec.ts';

type Message = MessageToProduce<string, string, string, string>;
/** `handedOver`: the batcher passed it to #commit, which from then on releases its bytes. */
type Encoded = { message: Message; bytes: number; handedOver: boolean };

export interface KafkaProducerSinkOptions {
  brokers: readonly string[];
  topic: string;
  logger: Logger;
  /** `tally_batch_size` observes the events of each coalesced produce. */
  metrics: Pick<Metrics, 'batchSize'>;
  /** Most events per produce call. */
  maxBatchEvents: number;
  /** How long an idle sink waits to fill a produce call. */
  lingerMs: number;
  /** Longest a request waits for Kafka's acknowledgement before it fails with 503. */
  ackTimeoutMs: number;
  /** Encoded bytes accepted but not yet acknowledged; beyond it requests fail with 503 at once. */
  maxInFlightBytes: number;
}

/** Most value bytes in one produce call, so that no per-partition record batch nears a broker limit. */
const MAX_SEND_BYTES = 1024 * 1024;
/**
 * How long the producer waits for any broker's answer before it tries elsewhere.
 * TRICKY: the client's `timeout` (kafkaClientOptions) is what the broker waits for replicas; the
 * client-side wait is `requestTimeout`, 30 s by default. A broker that accepts connections but
 * never answers (frozen, cut off by a network partition) then held every produce, and a new
 * producer's first metadata request, for 30 s, so ingest refused everything though the cluster
 * had moved the partitions to other leaders within seconds (issue 23, cluster fault 4). Longer
 * than the broker-side 2 s, so that a slow acks=all write is answered, not abandoned.
 */
const PRODUCER_REQUEST_TIMEOUT_MS = 3_000;
/** Per-record overhead counted on top of key and value (headers, framing). */
const RECORD_OVERHEAD_BYTES = 64;

/**
 * The `tally ingest` sink: events become Kafka messages (src/kafka/codec.ts), concurrent
 * requests are coalesced into one produce call, and a request resolves only once Kafka
 * acknowledged its messages (idempotent producer, acks=all, lz4). Kafka unreachable or slow →
 * TALLY_KAFKA_UNAVAILABLE (503 with Retry-After) within `ackTimeoutMs`; the next request
 * tries again with a fresh producer, so ingest recovers by itself when the broker is back.
 */
export class KafkaProducerSink implements EventSink {
  readonly #opts: KafkaProducerSinkOptions;
  readonly #batcher: MicroBatcher<Encoded, never>;
  readonly #admin: Admin;
  #producer: Producer<string, string, string, string> | undefined;
  #inFlightBytes = 0;
  #stopping = false;
  #stopped: Promise<void> | undefined;

  constructor(options: KafkaProducerSinkOptions) {
    this.#opts = options;
    this.#batcher = new MicroBatcher<Encoded, never>({
      commit: (items) => this.#commit(items),
      maxBatchEvents: options.maxBatchEvents,
      lingerMs: options.lingerMs,
      // The byte bound in submit() is the real limit.
      maxQueuedEvents: Number.MAX_SAFE_INTEGER,
    });
    this.#admin = new Admin({
      ...kafkaClientOptions(options.brokers, 'tally-ingest-health'),
      retries: 0,
      timeout: 1_500,
    });
  }

  /** Bytes accepted and not yet acknowledged by Kafka (or given up on). */
  get inFlightBytes(): number {
    return this.#inFlightBytes;
  }

  async submit(events: TallyEvent[]): Promise<undefined> {
    if (this.#stopping) {
      throw new TallyError('TALLY_SHUTTING_DOWN', 'Tally is shutting down; retry against another instance');
    }
    const items = events.map((event) => this.#encode(event));
    const bytes = items.reduce((sum, i) => sum + i.bytes, 0);
    if (this.#inFlightBytes > 0 && this.#inFlightBytes + bytes > this.#opts.maxInFlightBytes) {
      throw new TallyError(
        'TALLY_KAFKA_UNAVAILABLE',
        'Kafka is not keeping up: too many events are waiting for its acknowledgement; retry shortly',
      );
    }
    // Released in #commit once Kafka has answered (or the send was abandoned), not when the
    // request gave up waiting: an abandoned send still holds its buffers.
    this.#inFlightBytes += bytes;
    try {
      await this.#batcher.submit(items);
    } catch (err) {
      // Refused before reaching Kafka (the batcher was stopping): nobody else will release them.
      if (!items[0].handedOver) this.#inFlightBytes -= bytes;
      throw err;
    }
    return undefined;
  }

  /** Readiness: Kafka answers a metadata request for the topic. */
  readonly health: HealthCheck = {
    name: 'kafka',
    check: async () => {
      await this.#admin.metadata({ topics: [this.#opts.topic], forceUpdate: true });
      return 'ok';
    },
  };

  /** Refuses new events, waits for the in-flight ones to be acknowledged (or fail), closes the clients. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      await this.#batcher.stop();
      await Promise.allSettled([this.#producer?.close(), this.#admin.close()]);
      this.#producer = undefined;
    })();
    return this.#stopped;
  }

  #encode(event: TallyEvent): Encoded {
    const { key, value, headers } = encodeEvent(event);
    return {
      message: { topic: this.#opts.topic, key, value, headers },
      bytes: key.length + value.length + RECORD_OVERHEAD_BYTES,
      handedOver: false,
    };
  }

  async #commit(items: Encoded[]): Promise<undefined> {
    let bytes = 0;
    for (const item of items) {
      bytes += item.bytes;
      item.handedOver = true;
    }
    this.#opts.metrics.batchSize.observe(items.length);
    const sending = this.#send(items);
    const release = () => {
      this.#inFlightBytes -= bytes;
    };
    sending.then(release, release);
    await withTimeout(
      sending,
      this.#opts.ackTimeoutMs,
      () =>
        new TallyError(
          'TALLY_KAFKA_UNAVAILABLE',
          `Kafka did not acknowledge within ${this.#opts.ackTimeoutMs} ms; retry shortly`,
        ),
    );
    return undefined;
  }

  async #send(items: Encoded[]): Promise<void> {
    const producer = this.#currentProducer();
    try {
      let chunk: Message[] = [];
      let chunkBytes = 0;
      for (const item of items) {
        if (chunk.length > 0 && chunkBytes + item.bytes > MAX_SEND_BYTES) {
          await producer.send({ messages: chunk });
          chunk = [];
          chunkBytes = 0;
        }
        chunk.push(item.message);
        chunkBytes += item.bytes;
      }
      if (chunk.length > 0) await producer.send({ messages: chunk });
    } catch (err) {
      // TRICKY: after a failed send the idempotent producer's sequence numbers may no longer
      // match the broker's; a new producer (new producer id) starts clean. Duplicates that a
      // retry may cause are removed downstream: the batch transaction stores each event_id once
      // (ARCHITECTURE.md, "The way of an event").
      if (this.#producer === producer) {
        this.#producer = undefined;
        producer.close(true).catch(() => undefined);
      }
      this.#opts.logger.warn({ err }, 'Kafka produce failed');
      throw new TallyError('TALLY_KAFKA_UNAVAILABLE', 'Kafka did not acknowledge the events; retry shortly', {
        cause: err,
      });
    }
  }

  #currentProducer(): Producer<string, string, string, string> {
    this.#producer ??= new Producer({
      ...kafkaClientOptions(this.#opts.brokers, 'tally-ingest'),
      requestTimeout: PRODUCER_REQUEST_TIMEOUT_MS,
      serializers: stringSerializers,
      idempotent: true,
      acks: -1,
      compression: 'lz4',
      // Java-compatible murmur2: the same key lands on the same partition as from Java clients.
      partitioner: compatibilityPartitioner,
    });
    return this.#producer;
  }
}
