import type pg from 'pg';
import type { Metrics } from '../observability/metrics.ts';
import { deadLetterSummary, lastCommitAt } from '../store/pipeline-store.ts';
import type { LiveFeed } from './live-feed.ts';

export interface PipelineStatusDeps {
  pool: pg.Pool;
  /** The lag gauge is read from here: only a process that consumes Kafka sets it. */
  metrics: Pick<Metrics, 'consumerLag'>;
  live: LiveFeed;
  /** `embedded`: no event log, so no lag; `kafka`: lag is reported when this process consumes. */
  mode: 'embedded' | 'kafka';
}

export interface PartitionLag {
  topic: string;
  partition: number;
  lag: number;
}

/** Pipeline health for the dashboard: consumer lag, dead letters, last commit. */
export class PipelineStatus {
  readonly #deps: PipelineStatusDeps;

  constructor(deps: PipelineStatusDeps) {
    this.#deps = deps;
  }

  async status(project: string) {
    const { pool, live, mode } = this.#deps;
    const [dead, committed, lag] = await Promise.all([
      deadLetterSummary(pool, project),
      lastCommitAt(pool, project),
      this.#lag(),
    ]);
    const lastCommit = Math.max(committed?.getTime() ?? 0, live.lastCommit(project) ?? 0);
    return {
      mode,
      consumer_lag: lag,
      dead_letters: {
        total: dead.total,
        unreplayed: dead.unreplayed,
        last_at: dead.lastAt?.toISOString() ?? null,
      },
      last_commit: lastCommit > 0 ? new Date(lastCommit).toISOString() : null,
    };
  }

  /** Null when unknown here: embedded mode has no log, and a query-only process does not consume. */
  async #lag(): Promise<{ total: number; partitions: PartitionLag[] } | null> {
    if (this.#deps.mode === 'embedded') return null;
    const { values } = await this.#deps.metrics.consumerLag.get();
    if (values.length === 0) return null;
    const partitions = values.map((v) => ({
      topic: String(v.labels.topic ?? ''),
      partition: Number(v.labels.partition ?? 0),
      lag: v.value,
    }));
    return { total: partitions.reduce((sum, p) => sum + p.lag, 0), partitions };
  }
}
