import type { Consumer } from '@platformatic/kafka';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';
import { partitionKey, readPositions, type TopicPartition } from '../store/positions.ts';
import type { StallDetector } from './stall-detector.ts';

export interface LagMonitorDeps {
  consumer: Pick<Consumer<Buffer, Buffer, Buffer, Buffer>, 'listOffsets'>;
  metrics: Pick<Metrics, 'consumerLag' | 'consumerLagSum'>;
  logger: Logger;
  /** Stored next offset per assigned partition (`topic:partition`; null: nothing stored yet). */
  positions: () => ReadonlyMap<string, number | null>;
  /** Told what each tick saw, so that a processor that makes no progress says so. */
  stalls: StallDetector;
  /** For a member that owns nothing: the group's positions in PostgreSQL. */
  pool: pg.Pool;
  groupId: string;
  topics: readonly string[];
}

const DEFAULT_INTERVAL_MS = 2000;

/**
 * Publishes `tally_consumer_lag{topic,partition}` = high watermark − next offset stored in
 * PostgreSQL, for the partitions this member owns (partitions it lost are removed from the gauge),
 * and their sum; feeds the stall detector.
 */
export class LagMonitor {
  readonly #deps: LagMonitorDeps;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #published = new Set<string>();
  #running: Promise<void> | undefined;

  constructor(deps: LagMonitorDeps, intervalMs = DEFAULT_INTERVAL_MS) {
    this.#deps = deps;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.#timer ??= setInterval(() => {
      if (this.#running) return;
      this.#running = this.update()
        .catch((err: unknown) => this.#deps.logger.debug({ err }, 'measuring consumer lag failed'))
        .finally(() => (this.#running = undefined));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async update(): Promise<void> {
    const { consumer, metrics, stalls } = this.#deps;
    const positions = this.#deps.positions();
    let latest: Map<string, bigint[]>;
    try {
      latest = await consumer.listOffsets({ topics: [...this.#deps.topics] });
    } catch (err) {
      this.#deps.logger.debug({ err }, 'listing high watermarks failed');
      return;
    }
    const current = new Set<string>();
    let owned = 0;
    let ownedPositions = 0;
    for (const [key, next] of positions) {
      const { topic, partition } = parseKey(key);
      const high = latest.get(topic)?.[partition];
      if (high === undefined) continue;
      const lag = Math.max(0, Number(high) - (next ?? 0));
      metrics.consumerLag.set({ topic, partition: String(partition) }, lag);
      current.add(key);
      owned += lag;
      ownedPositions += next ?? 0;
    }
    for (const key of this.#published) {
      if (current.has(key)) continue;
      const { topic, partition } = parseKey(key);
      metrics.consumerLag.remove({ topic, partition: String(partition) });
    }
    this.#published = current;
    metrics.consumerLagSum.set(owned);
    if (positions.size > 0) {
      stalls.observe({
        scope: 'owned',
        partitions: [...positions.keys()].sort().join(' '),
        lag: owned,
        positions: ownedPositions,
      });
      return;
    }
    // No assignment: idle is fine as long as someone in the group makes progress.
    const all: TopicPartition[] = [...latest].flatMap(([topic, highs]) =>
      highs.map((_, partition) => ({ topic, partition })),
    );
    const stored = await readPositions(this.#deps.pool, this.#deps.groupId, all);
    let lag = 0;
    let sum = 0;
    for (const { topic, partition } of all) {
      const next = stored.get(partitionKey(topic, partition)) ?? 0;
      lag += Math.max(0, Number(latest.get(topic)?.[partition] ?? 0n) - next);
      sum += next;
    }
    stalls.observe({
      scope: 'group',
      partitions: all.map((p) => partitionKey(p.topic, p.partition)).join(' '),
      lag,
      positions: sum,
    });
  }
}

function parseKey(key: string): { topic: string; partition: number } {
  const at = key.lastIndexOf(':');
  return { topic: key.slice(0, at), partition: Number(key.slice(at + 1)) };
}
