import type { MessageToProduce, Producer } from '@platformatic/kafka';
import { DLQ_HEADERS, dlqTopic } from '../kafka/dead-letters.ts';
import type { PoisonMessage } from './batch-builder.ts';

const MAX_DETAIL_CHARS = 1000;
/** Stay well under the broker's default 1 MB request size when splitting sends. */
const MAX_SEND_BYTES = 512 * 1024;

/** The dead-letter record for one poison message: its raw value, with the reason and source in headers. */
export function dlqRecord(p: PoisonMessage): MessageToProduce<Buffer, Buffer, Buffer, Buffer> {
  const headers = new Map<Buffer, Buffer>([
    [Buffer.from(DLQ_HEADERS.reason), Buffer.from(p.reason)],
    [Buffer.from(DLQ_HEADERS.detail), Buffer.from(p.detail.slice(0, MAX_DETAIL_CHARS))],
    [Buffer.from(DLQ_HEADERS.topic), Buffer.from(p.topic)],
    [Buffer.from(DLQ_HEADERS.partition), Buffer.from(String(p.partition))],
    [Buffer.from(DLQ_HEADERS.offset), Buffer.from(String(p.offset))],
  ]);
  if (p.project !== null) headers.set(Buffer.from(DLQ_HEADERS.project), Buffer.from(p.project));
  // Keyed by source partition: the dead letters of one partition stay in order.
  return {
    topic: dlqTopic(p.topic),
    key: Buffer.from(`${p.topic}:${p.partition}`),
    value: p.payload,
    headers,
  };
}

/**
 * Writes poison messages to `<topic>.dlq` and resolves once Kafka acknowledged all of them.
 * The processor calls it before the transaction that advances past them, so a crash in between
 * can only write a dead letter twice, never lose one.
 */
export async function publishDeadLetters(
  producer: Pick<Producer<Buffer, Buffer, Buffer, Buffer>, 'send'>,
  poison: readonly PoisonMessage[],
): Promise<void> {
  let chunk: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[] = [];
  let bytes = 0;
  for (const p of poison) {
    const record = dlqRecord(p);
    const size = p.payload.length + 256;
    if (chunk.length > 0 && bytes + size > MAX_SEND_BYTES) {
      await producer.send({ messages: chunk });
      chunk = [];
      bytes = 0;
    }
    chunk.push(record);
    bytes += size;
  }
  if (chunk.length > 0) await producer.send({ messages: chunk });
}
