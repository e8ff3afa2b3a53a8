import { Admin, ProduceAcks, Producer, type MessageToProduce } from '@platformatic/kafka';
import { normalizeEvent } from '../../src/event/normalize.ts';
import { encodeEvent } from '../../src/kafka/codec.ts';

export type EncodedMessage = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

/** An event as `tally ingest` would write it to `topic` (normalized, then src/kafka/codec.ts). */
export function toMessage(topic: string, body: Record<string, unknown>, project = 'default'): EncodedMessage {
  const r = normalizeEvent(body, { project, receivedAt: Date.now(), maxFutureSkewMs: 300_000 });
  if (!r.ok) throw new Error(`bench event invalid: ${JSON.stringify(r.issues)}`);
  const e = encodeEvent(r.event);
  return {
    topic,
    key: Buffer.from(e.key),
    value: Buffer.from(e.value),
    headers: new Map([...e.headers].map(([k, v]) => [Buffer.from(k), Buffer.from(v)])),
  };
}

/** The producer settings of `tally ingest` (src/ingest/kafka-sink.ts): idempotent, acks=all, lz4. */
export function benchProducer(bootstrap: string): Producer<Buffer, Buffer, Buffer, Buffer> {
  return new Producer({
    clientId: 'tally-bench',
    bootstrapBrokers: [bootstrap],
    idempotent: true,
    acks: ProduceAcks.ALL,
    compression: 'lz4',
    retries: 3,
  });
}

/** Produces `messages` in chunks, a few sends in flight; resolves once Kafka acknowledged all. */
export async function produceAll(
  producer: Producer<Buffer, Buffer, Buffer, Buffer>,
  messages: readonly EncodedMessage[],
  chunk = 2000,
): Promise<void> {
  const chunks: EncodedMessage[][] = [];
  for (let i = 0; i < messages.length; i += chunk) chunks.push(messages.slice(i, i + chunk));
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let c = chunks.shift(); c; c = chunks.shift()) await producer.send({ messages: c });
    }),
  );
}

/** Sum of the end offsets of every partition of `topic`: how many messages it holds. */
export async function topicSize(bootstrap: string, topic: string): Promise<number> {
  const admin = new Admin({ clientId: 'tally-bench', bootstrapBrokers: [bootstrap] });
  try {
    const metadata = await admin.metadata({ topics: [topic] });
    const partitions = metadata.topics.get(topic)!.partitionsCount;
    const [offsets] = await admin.listOffsets({
      topics: [
        {
          name: topic,
          partitions: Array.from({ length: partitions }, (_, p) => ({ partitionIndex: p, timestamp: -1n })),
        },
      ],
    });
    return offsets.partitions.reduce((sum, p) => sum + Number(p.offset), 0);
  } finally {
    await admin.close();
  }
}
