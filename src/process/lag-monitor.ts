import type { Consumer } from '@platformatic/kafka';
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';

export interface LagMonitorDeps {
  consumer: Pick<Consumer<Buffer, Buffer, Buffer, Buffer>, 'listOffsets'>;
  metrics: Metrics;
  logger: Logger;
  /** Stored next offset per assigned partition (`topic:partition`; null: nothing stored yet). */
  positions: () => ReadonlyMap<string, number | null>;
}

const DEFAULT_INTERVAL_MS = 2000;

/**
 * Publishes `tally_consumer_lag{topic,partition}` = high watermark − next offset stored in
 * PostgreSQL, for the partitions this member owns; partitions it lost are removed from the gauge.
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
      this.#running = this.update().finally(() => (this.#running = undefined));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async update(): Promise<void> {
    const positions = this.#deps.positions();
    const byTopic = new Map<string, number[]>();
    for (const key of positions.keys()) {
      const { topic, partition } = parseKey(key);
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    }
    const gauge = this.#deps.metrics.consumerLag;
    const current = new Set<string>();
    if (byTopic.size > 0) {
      let latest: Map<string, bigint[]>;
      try {
        latest = await this.#deps.consumer.listOffsets({
          topics: [...byTopic.keys()],
          partitions: Object.fromEntries(byTopic),
        });
      } catch (err) {
        this.#deps.logger.debug({ err }, 'listing high watermarks failed');
        return;
      }
      for (const [key, next] of positions) {
        const { topic, partition } = parseKey(key);
        const high = latest.get(topic)?.[partition];
        if (high === undefined) continue;
        gauge.set({ topic, partition: String(partition) }, Math.max(0, Number(high) - (next ?? 0)));
        current.add(key);
      }
    }
    for (const key of this.#published) {
      if (current.has(key)) continue;
      const { topic, partition } = parseKey(key);
      gauge.remove({ topic, partition: String(partition) });
    }
    this.#published = current;
  }
}

function parseKey(key: string): { topic: string; partition: number } {
  const at = key.lastIndexOf(':');
  return { topic: key.slice(0, at), partition: Number(key.slice(at + 1)) };
}
