import {
  Admin,
  Consumer,
  MessagesStreamModes,
  Producer,
  compatibilityPartitioner,
} from '@platformatic/kafka';
import type { Message, MessageToProduce } from '@platformatic/kafka';
import { TallyError } from '../errors/tally-error.ts';
import { FETCH_MAX_BYTES, kafkaClientOptions } from '../kafka/client-options.ts';
import { DEFAULT_PROJECT } from '../auth/authorize.ts';
import { decodeEventMessage } from '../kafka/codec.ts';
import { DLQ_HEADERS, DLQ_SUFFIX } from '../kafka/dead-letters.ts';

export interface ReplayOptions {
  brokers: readonly string[];
  /** The dead-letter topic to drain, `<topic>.dlq`. */
  dlqTopic: string;
  /** Consumer group that remembers how far replay got (committed after each re-published chunk). */
  groupId: string;
  /** Only dead letters written at or after this time (epoch ms); older ones are skipped. */
  since?: number;
  /** Count what would move, produce and commit nothing. */
  dryRun: boolean;
  maxFutureSkewMs: number;
  /** Values above this size still fail and are skipped. */
  maxMessageBytes: number;
  /** Called with the total to read once known, then after each chunk with how many were read. */
  onProgress?: (read: number, total: number) => void;
}

export interface ReplaySummary {
  /** Dead letters read (between the group's committed offsets and the ends taken at start). */
  read: number;
  /** Re-published to their source topic (with --dry-run: would be). */
  moved: number;
  /** Left where they are, by why: `older_than_since`, `no_source_topic`, or the reason they still fail. */
  skipped: Record<string, number>;
  /** Where they went: source topic → count. */
  targets: Record<string, number>;
}

type DeadLetter = Message<Buffer, Buffer, Buffer, Buffer>;
type Record_ = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

const CHUNK_MESSAGES = 500;
const CHUNK_BYTES = 1024 * 1024;

/**
 * Re-publishes the dead letters of `dlqTopic` to their source topic (header
 * `tally-source-topic`, else the name without `.dlq`), value and project header unchanged, key
 * project + user as ingest would have set it. Dead letters that would still fail with today's
 * code are skipped, as are those older than `since`. Terminates: it reads up to the end offsets
 * taken at start. Progress is committed to `groupId` after each chunk Kafka acknowledged, so a
 * second replay does not send the same dead letters again.
 */
export async function replayDeadLetters(options: ReplayOptions): Promise<ReplaySummary> {
  const { dlqTopic } = options;
  const summary: ReplaySummary = { read: 0, moved: 0, skipped: {}, targets: {} };
  const bounds = await readBounds(options);
  const total = bounds.reduce((sum, b) => sum + Number(b.end - b.start), 0);
  options.onProgress?.(0, total);
  if (total === 0) return summary;

  const consumer = new Consumer({
    ...kafkaClientOptions(options.brokers, 'tally-replay'),
    groupId: options.groupId,
    maxWaitTime: 200,
    maxBytes: FETCH_MAX_BYTES,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
  });
  const producer = options.dryRun
    ? undefined
    : new Producer({
        ...kafkaClientOptions(options.brokers, 'tally-replay'),
        idempotent: true,
        acks: -1,
        compression: 'lz4',
        partitioner: compatibilityPartitioner,
      });
  try {
    const open = new Map(bounds.filter((b) => b.end > b.start).map((b) => [b.partition, b.end]));
    const stream = await consumer.consume({
      topics: [dlqTopic],
      mode: MessagesStreamModes.MANUAL,
      offsets: bounds.map((b) => ({ topic: dlqTopic, partition: b.partition, offset: b.start })),
      autocommit: false,
    });
    let chunk: Record_[] = [];
    let chunkBytes = 0;
    const done = new Map<number, { offset: bigint; leaderEpoch: number }>();
    const flush = async () => {
      if (producer !== undefined) {
        if (chunk.length > 0) await producer.send({ messages: chunk });
        if (done.size > 0) {
          await consumer.commit({
            offsets: [...done].map(([partition, d]) => ({ topic: dlqTopic, partition, ...d })),
          });
        }
      }
      chunk = [];
      chunkBytes = 0;
      done.clear();
      options.onProgress?.(summary.read, total);
    };
    try {
      for await (const message of stream) {
        const end = open.get(message.partition);
        if (end === undefined) continue; // a partition already read up to its end
        if (message.offset >= end) {
          // Written after we started, and the partition has no more to read before it.
          open.delete(message.partition);
          if (open.size === 0) break;
          continue;
        }
        summary.read++;
        const record = toSourceRecord(message, options, summary);
        if (record !== undefined && chunk.length > 0 && !closeInTime(chunk[0], record)) await flush();
        if (record !== undefined) {
          chunk.push(record);
          chunkBytes += (record.value?.length ?? 0) + 256;
        }
        // A committed offset is the next one to read.
        done.set(message.partition, { offset: message.offset + 1n, leaderEpoch: message.leaderEpoch });
        if (message.offset + 1n >= end) open.delete(message.partition);
        if (open.size === 0) break;
        if (chunk.length >= CHUNK_MESSAGES || chunkBytes >= CHUNK_BYTES) await flush();
      }
      await flush();
    } finally {
      await stream.close();
    }
  } finally {
    await Promise.allSettled([consumer.close(true), producer?.close()]);
  }
  return summary;
}

/**
 * TRICKY: @platformatic/kafka 2.12 zigzag-encodes a record's timestamp delta from its batch's
 * first record with `>> 31n` instead of `>> 63n`, so deltas of 2^31 ms (about 25 days) or more
 * come out wrong. Records whose original timestamps are that far apart go in separate sends.
 */
const MAX_TIMESTAMP_SPREAD_MS = 2n ** 31n - 1n;

function closeInTime(first: Record_, next: Record_): boolean {
  const delta = (next.timestamp ?? 0n) - (first.timestamp ?? 0n);
  return delta < MAX_TIMESTAMP_SPREAD_MS && delta > -MAX_TIMESTAMP_SPREAD_MS;
}

function count(into: Record<string, number>, key: string): void {
  into[key] = (into[key] ?? 0) + 1;
}

/** The record to re-publish for one dead letter, or undefined (counted as skipped). */
function toSourceRecord(
  message: DeadLetter,
  options: ReplayOptions,
  summary: ReplaySummary,
): Record_ | undefined {
  // Header keys are Buffers (a Map by identity): compare their text.
  const header = (name: string) => {
    for (const [k, v] of message.headers) if (k.toString() === name) return v.toString();
    return undefined;
  };
  if (options.since !== undefined && Number(message.timestamp) < options.since) {
    count(summary.skipped, 'older_than_since');
    return undefined;
  }
  const target =
    header(DLQ_HEADERS.topic) ??
    (options.dlqTopic.endsWith(DLQ_SUFFIX) ? options.dlqTopic.slice(0, -DLQ_SUFFIX.length) : undefined);
  if (target === undefined || target === options.dlqTopic) {
    count(summary.skipped, 'no_source_topic');
    return undefined;
  }
  const project = header(DLQ_HEADERS.project);
  // TRICKY: the original Kafka timestamp is kept, because it is the receive time of events
  // that carry none (src/kafka/codec.ts).
  const decoded = decodeEventMessage(message.value, {
    project,
    messageTimestamp: Number(message.timestamp),
    maxFutureSkewMs: options.maxFutureSkewMs,
    maxBytes: options.maxMessageBytes,
  });
  if (!decoded.ok) {
    count(summary.skipped, `still_${decoded.reason}`);
    return undefined;
  }
  summary.moved++;
  count(summary.targets, target);
  const headers = new Map<Buffer, Buffer>();
  if (project !== undefined) headers.set(Buffer.from(DLQ_HEADERS.project), Buffer.from(project));
  headers.set(
    Buffer.from('tally-replayed-from'),
    Buffer.from(`${options.dlqTopic}:${message.partition}:${message.offset}`),
  );
  return {
    topic: target,
    key: Buffer.from(`${project ?? DEFAULT_PROJECT}\u001f${decoded.event.userId}`),
    value: message.value,
    headers,
    timestamp: message.timestamp,
  };
}

interface PartitionBounds {
  partition: number;
  start: bigint;
  end: bigint;
}

/** Per partition: where replay resumes (the group's committed offset, else the log start) and the end now. */
async function readBounds(options: ReplayOptions): Promise<PartitionBounds[]> {
  const admin = new Admin(kafkaClientOptions(options.brokers, 'tally-replay-admin'));
  try {
    const metadata = await admin.metadata({ topics: [options.dlqTopic] });
    const topic = metadata.topics.get(options.dlqTopic);
    if (topic === undefined) {
      throw new TallyError('TALLY_NOT_FOUND', `topic ${options.dlqTopic} does not exist`);
    }
    const partitions = Array.from({ length: topic.partitionsCount }, (_, i) => i);
    const listed = async (timestamp: bigint) => {
      const [result] = await admin.listOffsets({
        topics: [
          { name: options.dlqTopic, partitions: partitions.map((p) => ({ partitionIndex: p, timestamp })) },
        ],
      });
      return new Map(result.partitions.map((p) => [p.partitionIndex, p.offset]));
    };
    const earliest = await listed(-2n);
    const latest = await listed(-1n);
    const [group] = await admin.listConsumerGroupOffsets({
      groups: [
        { groupId: options.groupId, topics: [{ name: options.dlqTopic, partitionIndexes: partitions }] },
      ],
    });
    const committed = new Map(
      (group?.topics.find((t) => t.name === options.dlqTopic)?.partitions ?? []).map((p) => [
        p.partitionIndex,
        p.committedOffset,
      ]),
    );
    return partitions.map((partition) => {
      const first = earliest.get(partition) ?? 0n;
      const end = latest.get(partition) ?? 0n;
      const resume = committed.get(partition) ?? -1n;
      const start = resume > first ? resume : first;
      return { partition, start: start < end ? start : end, end };
    });
  } finally {
    await admin.close();
  }
}
