import type pg from 'pg';
import type { Logger } from 'pino';
import { DAY } from '../store/levels.ts';
import { StatsStore } from '../store/stats-store.ts';
import type { LiveFeed } from './live-feed.ts';

export interface RollupWatcherDeps {
  pool: pg.Pool;
  live: LiveFeed;
  logger: Logger;
  intervalMs?: number;
  now?: () => number;
}

/**
 * Feeds a `LiveFeed` in a process that does not commit batches itself (`tally query`): once a
 * second it reads, per watched project, the event total of the recent day-level rollups and
 * records what grew. Only projects with an open stream are polled.
 *
 * TRICKY: the total covers days from yesterday on, so events committed now with an older
 * timestamp do not show in the rate (they still show in the numbers on the next refresh).
 */
export class RollupWatcher {
  readonly #deps: RollupWatcherDeps;
  readonly #stats: StatsStore;
  readonly #watchers = new Map<string, number>();
  readonly #seen = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #polling = false;

  constructor(deps: RollupWatcherDeps) {
    this.#deps = deps;
    this.#stats = new StatsStore(deps.pool);
  }

  /** Starts polling `project` (shared between callers); the returned function stops this caller's interest. */
  watch(project: string): () => void {
    this.#watchers.set(project, (this.#watchers.get(project) ?? 0) + 1);
    this.#timer ??= setInterval(() => void this.poll(), this.#deps.intervalMs ?? 1000);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.#watchers.get(project) ?? 1) - 1;
      if (n > 0) this.#watchers.set(project, n);
      else {
        this.#watchers.delete(project);
        this.#seen.delete(project);
      }
      if (this.#watchers.size === 0) this.stop();
    };
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One round of polling (also called by the timer). Failures are logged and retried next round. */
  async poll(): Promise<void> {
    if (this.#polling || this.#watchers.size === 0) return;
    this.#polling = true;
    const { live, logger } = this.#deps;
    const now = (this.#deps.now ?? Date.now)();
    try {
      const since = new Date(Math.floor(now / DAY.ms) * DAY.ms - DAY.ms);
      const totals = await this.#stats.dayTotalsSince([...this.#watchers.keys()], since);
      for (const project of this.#watchers.keys()) {
        const total = totals.get(project) ?? 0;
        const before = this.#seen.get(project);
        this.#seen.set(project, total);
        // The first reading is the baseline; so is a total that shrank (the day rolled over).
        if (before === undefined || total < before) continue;
        if (total > before) live.record(project, total - before, now);
      }
    } catch (err) {
      logger.warn({ err }, 'live rollup poll failed');
    } finally {
      this.#polling = false;
    }
  }
}
