import type { TallyEvent } from '../event/types.ts';
import { RollingRate } from './rolling-rate.ts';

/** What `GET /v1/stream` pushes, once a second, for one project. */
export interface LiveSnapshot {
  /** Server time of the snapshot. */
  now: string;
  /** Events committed per second over the last `window_sec` seconds. */
  rate: number;
  window_sec: number;
  /** Events committed since this process started. */
  committed: number;
  /** Grows with every commit that stored events of the project: the dashboard refetches when it changes. */
  commits: number;
  last_commit: string | null;
}

interface ProjectState {
  rate: RollingRate;
  committed: number;
  commits: number;
  lastCommit: number | null;
}

export const LIVE_WINDOW_SEC = 10;

/**
 * Live activity per project, fed by the batch processor's `onCommit` (embedded mode, or any
 * process that commits batches) or, in a process that only queries, by a `RollupWatcher`. Holds only counters: nothing here grows with traffic beyond
 * one small entry per project.
 */
export class LiveFeed {
  readonly #projects = new Map<string, ProjectState>();
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** For `BatchProcessor`'s `onCommit`: counts the events stored for the first time. */
  readonly onCommit = (events: readonly TallyEvent[]): void => {
    if (events.length === 0) return;
    const at = this.#now();
    const perProject = new Map<string, number>();
    for (const e of events) perProject.set(e.project, (perProject.get(e.project) ?? 0) + 1);
    for (const [project, n] of perProject) this.record(project, n, at);
  };

  /** Notes `count` events of `project` committed at `at` (epoch ms). */
  record(project: string, count: number, at = this.#now()): void {
    const s = this.#state(project);
    s.rate.record(count, at);
    s.committed += count;
    s.commits += 1;
    s.lastCommit = Math.max(s.lastCommit ?? 0, at);
  }

  /** The last commit that stored events of `project` in this process, epoch ms. */
  lastCommit(project: string): number | null {
    return this.#projects.get(project)?.lastCommit ?? null;
  }

  snapshot(project: string): LiveSnapshot {
    const now = this.#now();
    const s = this.#projects.get(project);
    return {
      now: new Date(now).toISOString(),
      rate: s ? Math.round(s.rate.rate(now) * 100) / 100 : 0,
      window_sec: LIVE_WINDOW_SEC,
      committed: s?.committed ?? 0,
      commits: s?.commits ?? 0,
      last_commit: s?.lastCommit != null ? new Date(s.lastCommit).toISOString() : null,
    };
  }

  #state(project: string): ProjectState {
    let s = this.#projects.get(project);
    if (!s) {
      s = { rate: new RollingRate(LIVE_WINDOW_SEC), committed: 0, commits: 0, lastCommit: null };
      this.#projects.set(project, s);
    }
    return s;
  }
}
