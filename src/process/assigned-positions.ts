import type { PositionUpdate } from '../store/batch-writer.ts';
import { partitionKey } from '../store/positions.ts';

/**
 * The stored next offset of each partition assigned to this member (null: nothing stored yet):
 * what the fence expects of the next batch. Replaced by each rebuild, advanced by each commit.
 */
export class AssignedPositions {
  #positions = new Map<string, number | null>();

  replace(positions: Map<string, number | null>): void {
    this.#positions = positions;
  }

  has(key: string): boolean {
    return this.#positions.has(key);
  }

  /** The fence's expectation for `key` (null when nothing is stored or it is not assigned). */
  expected(key: string): number | null {
    return this.#positions.get(key) ?? null;
  }

  /** After a commit: its positions are now the stored ones. */
  advance(updates: readonly Pick<PositionUpdate, 'topic' | 'partition' | 'next'>[]): void {
    for (const p of updates) this.#positions.set(partitionKey(p.topic, p.partition), p.next);
  }

  snapshot(): ReadonlyMap<string, number | null> {
    return this.#positions;
  }
}
