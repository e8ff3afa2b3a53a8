import type pg from 'pg';
import { classifyPgError } from './pg-errors.ts';

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** `topic:partition`, the key the processor uses for everything per partition. */
export function partitionKey(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

/**
 * The next offset stored for each of `partitions` in the consumer group, keyed by
 * `partitionKey`; partitions with nothing stored yet are absent.
 */
export async function readPositions(
  pool: pg.Pool,
  groupId: string,
  partitions: readonly TopicPartition[],
): Promise<Map<string, number>> {
  if (partitions.length === 0) return new Map();
  try {
    const { rows } = await pool.query<{ topic: string; partition: number; next_offset: string }>(
      `SELECT p.topic, p.partition, p.next_offset
         FROM tally.positions p
         JOIN unnest($2::text[], $3::int[]) AS x(topic, partition)
           ON p.topic = x.topic AND p.partition = x.partition
        WHERE p.group_id = $1`,
      [groupId, partitions.map((p) => p.topic), partitions.map((p) => p.partition)],
    );
    return new Map(rows.map((r) => [partitionKey(r.topic, r.partition), Number(r.next_offset)]));
  } catch (err) {
    throw classifyPgError(err);
  }
}
