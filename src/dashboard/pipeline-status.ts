import type pg from 'pg';
import { DAY } from '../store/levels.ts';
import type { Metrics } from '../observability/metrics.ts';
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
      pool.query<{ total: string; unreplayed: string; last_at: Date | null }>(
        // Messages that could not be parsed have no project: they concern every reader.
        `SELECT count(*) AS total, count(*) FILTER (WHERE replayed_at IS NULL) AS unreplayed,
                max(received_at) AS last_at
           FROM tally.dead_letters WHERE project = $1 OR project IS NULL`,
        [project],
      ),
      // Every commit that stores events touches the day-level rollup: a small index range per project,
      // and it also sees commits made by other processes (distributed mode) and before a restart.
      pool.query<{ t: Date | null }>(
        'SELECT max(updated_at) AS t FROM tally.rollup_events WHERE project = $1 AND level = $2',
        [project, DAY.level],
      ),
      this.#lag(),
    ]);
    const row = dead.rows[0];
    const lastCommit = Math.max(committed.rows[0]?.t?.getTime() ?? 0, live.lastCommit(project) ?? 0);
    return {
      mode,
      consumer_lag: lag,
      dead_letters: {
        total: Number(row.total),
        unreplayed: Number(row.unreplayed),
        last_at: row.last_at?.toISOString() ?? null,
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
