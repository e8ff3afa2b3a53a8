import type { PositionUpdate } from '../store/batch-writer.ts';
import { partitionKey } from '../store/positions.ts';

/**
 * The stored next offset of each partition assigned to this member (null: nothing stored yet):
 * what the fence expects of the next batch. Replaced by each rebuild, advanced by each commit.
 */
export class AssignedPositions {
  #positions = new Map<string, number | null>();
  /** The last partition `assigned` answered for, until the positions change. */
  #last: { topic: string; partition: number; assigned: boolean } | undefined;

  replace(positions: Map<string, number | null>): void {
    this.#positions = positions;
    this.#last = undefined;
  }

  has(key: string): boolean {
    return this.#positions.has(key);
  }

  /**
   * has(partitionKey(topic, partition)), asked for every consumed message: a fetch hands over runs
   * of one partition's messages, so the last answer is kept rather than a key string made and
   * hashed for each.
   */
  assigned(topic: string, partition: number): boolean {
    const last = this.#last;
    if (last !== undefined && last.partition === partition && last.topic === topic) return last.assigned;
    const assigned = this.#positions.has(partitionKey(topic, partition));
    this.#last = { topic, partition, assigned };
    return assigned;
  }

  /** The fence's expectation for `key` (null when nothing is stored or it is not assigned). */
  expected(key: string): number | null {
    return this.#positions.get(key) ?? null;
  }

  /** After a commit: its positions are now the stored ones. */
  advance(updates: readonly Pick<PositionUpdate, 'topic' | 'partition' | 'next'>[]): void {
    this.#last = undefined;
    for (const p of updates) this.#positions.set(partitionKey(p.topic, p.partition), p.next);
  }

  snapshot(): ReadonlyMap<string, number | null> {
    return this.#positions;
  }
}
