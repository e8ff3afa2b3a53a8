import type { TallyEvent } from '../event/types.ts';
import { decodeEventMessage, PROJECT_HEADER, type DeadLetterReason } from '../kafka/codec.ts';
import type { DeadLetter, PositionUpdate } from '../store/batch-writer.ts';
import { partitionKey } from '../store/positions.ts';

/** What the processor needs of a consumed Kafka record. */
export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: bigint;
  timestamp: bigint;
  value: Buffer | undefined | null;
  headers: Map<Buffer, Buffer>;
}

/** One poison message, as written to `<topic>.dlq` and to tally.dead_letters. */
export interface PoisonMessage {
  topic: string;
  partition: number;
  offset: number;
  project: string | null;
  reason: DeadLetterReason | 'db_rejected';
  detail: string;
  payload: Buffer;
}

export interface PendingBatch {
  events: TallyEvent[];
  /** The raw value of each event, same index: dead-lettered as is if PostgreSQL rejects the batch. */
  sources: { topic: string; partition: number; offset: number; payload: Buffer }[];
  poison: PoisonMessage[];
  positions: PositionUpdate[];
  /** Messages in the batch (events + poison). */
  size: number;
}

export interface BatchBuilderOptions {
  groupId: string;
  maxFutureSkewMs: number;
  maxMessageBytes: number;
}

interface Position {
  topic: string;
  partition: number;
  next: number;
}

/**
 * Accumulates consumed messages into the next batch: decodes each into an event or a poison
 * message and tracks, per partition, the offset the batch advances the stored position to.
 */
export class BatchBuilder {
  readonly #options: BatchBuilderOptions;
  #events: TallyEvent[] = [];
  #sources: PendingBatch['sources'] = [];
  #poison: PoisonMessage[] = [];
  #next = new Map<string, Position>();
  /** The entry of #next the last message moved. */
  #last: Position | undefined;
  #size = 0;

  constructor(options: BatchBuilderOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#size;
  }

  add(message: ConsumedMessage): void {
    const offset = Number(message.offset);
    const projectHeader = projectHeaderOf(message.headers);
    const decoded = decodeEventMessage(message.value, {
      project: projectHeader,
      messageTimestamp: Number(message.timestamp),
      maxFutureSkewMs: this.#options.maxFutureSkewMs,
      maxBytes: this.#options.maxMessageBytes,
    });
    const payload = message.value ?? Buffer.alloc(0);
    if (decoded.ok) {
      this.#events.push(decoded.event);
      this.#sources.push({ topic: message.topic, partition: message.partition, offset, payload });
    } else {
      this.#poison.push({
        topic: message.topic,
        partition: message.partition,
        offset,
        project: projectHeader ?? null,
        reason: decoded.reason,
        detail: decoded.detail,
        payload,
      });
    }
    // A fetch hands over runs of one partition's messages: most messages move the same entry.
    let position = this.#last;
    if (
      position === undefined ||
      position.topic !== message.topic ||
      position.partition !== message.partition
    ) {
      const key = partitionKey(message.topic, message.partition);
      position = this.#next.get(key);
      if (position === undefined) {
        position = { topic: message.topic, partition: message.partition, next: 0 };
        this.#next.set(key, position);
      }
      this.#last = position;
    }
    position.next = offset + 1;
    this.#size += 1;
  }

  /**
   * Hands over the batch and starts a new one. `expected` gives the stored next offset each
   * partition's position must still have for the batch to commit (null: nothing stored yet).
   */
  take(expected: (key: string) => number | null): PendingBatch {
    const positions: PositionUpdate[] = [...this.#next].map(([key, p]) => ({
      groupId: this.#options.groupId,
      topic: p.topic,
      partition: p.partition,
      expected: expected(key),
      next: p.next,
    }));
    const batch: PendingBatch = {
      events: this.#events,
      sources: this.#sources,
      poison: this.#poison,
      positions,
      size: this.#size,
    };
    this.clear();
    return batch;
  }

  /** Forgets everything accumulated (the partitions moved; the messages will be read again). */
  clear(): void {
    this.#events = [];
    this.#sources = [];
    this.#poison = [];
    this.#next = new Map();
    this.#last = undefined;
    this.#size = 0;
  }
}

/** The batch's poison messages as rows of tally.dead_letters. */
export function deadLetterRows(poison: readonly PoisonMessage[]): DeadLetter[] {
  return poison.map((p) => ({
    project: p.project,
    reason: p.reason,
    detail: p.detail,
    payload: p.payload,
    source: 'kafka',
    topic: p.topic,
    partition: p.partition,
    offset: p.offset,
  }));
}

/** Turns the events at `indices` (ones PostgreSQL refused) into poison messages, so the partition moves on. */
export function rejectEvents(
  batch: PendingBatch,
  indices: readonly number[],
  detail: string,
): PoisonMessage[] {
  return indices.map((i) => ({
    ...batch.sources[i],
    project: batch.events[i].project,
    reason: 'db_rejected' as const,
    detail,
  }));
}

const PROJECT_HEADER_BYTES = Buffer.from(PROJECT_HEADER);
let lastProject: { bytes: Buffer; text: string } | undefined;

/**
 * The project header's value. Compared as bytes, and the last value's text reused while it
 * repeats (a topic's messages nearly all name one project): no strings made per message.
 */
function projectHeaderOf(headers: Map<Buffer, Buffer>): string | undefined {
  for (const [k, v] of headers) {
    if (!k.equals(PROJECT_HEADER_BYTES)) continue;
    if (lastProject === undefined || !v.equals(lastProject.bytes)) {
      // A copy: `v` may be a view into a whole fetch response, which must not be kept alive.
      lastProject = { bytes: Buffer.from(v), text: v.toString() };
    }
    return lastProject.text;
  }
  return undefined;
}
