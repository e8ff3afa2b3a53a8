import type { HealthCheck } from '../observability/health.ts';
import type { Layers } from './columnar/layers.ts';
import { DEFAULT_CATCH_UP_WAIT_MS, ProjectModel, type ReadModelDeps } from './project-model.ts';

export type { ReadModelDeps } from './project-model.ts';

/**
 * The columnar read model of every project this process answers for (src/query/QUERY_PLANS.md,
 * "The columnar read model"): derived from PostgreSQL, the system of record, and never older
 * than the question.
 *
 * Read-your-writes: a question first takes its project's current data version (the one the
 * query cache keys on), and the model answers only once it holds that version or a later one.
 * When it is behind it catches up through the change feed (migration 018: the users each batch
 * changed, in commit order), reading those users' rows on the snapshot of a newer version into a
 * delta layer. When it cannot (still loading, or a version the feed does not describe: retention,
 * a rebuild, a backfill), `at` says so and the caller answers from PostgreSQL, while a reload
 * runs in the background. So an answer is never older than the last 202, either way.
 *
 * A question never waits long for the model: at most `catchUpWaitMs` (250 ms) for a catch-up,
 * which goes on in the background while PostgreSQL answers; a catch-up that would take the deltas
 * past twice the reload threshold becomes a reload; and loads are spaced so that loading takes at
 * most half the time, down to a ninth while each load is overtaken before it pays for itself
 * (src/query/project-model.ts; src/query/QUERY_PLANS.md, "Staying current").
 *
 * Each `tally query` instance keeps its own copy and catches up on its own; they share nothing
 * but PostgreSQL.
 */
export class ReadModel {
  readonly #deps: ReadModelDeps;
  readonly #projects = new Map<string, ProjectModel>();
  readonly #stop = new AbortController();
  /** Until `warm` has loaded every project it found, the model is not ready. */
  #warming = false;

  #loads: Promise<unknown> = Promise.resolve();

  constructor(deps: Omit<ReadModelDeps, 'signal' | 'oneLoadAtATime'>) {
    this.#deps = {
      ...deps,
      signal: this.#stop.signal,
      oneLoadAtATime: (load) => {
        const run = this.#loads.then(load, load);
        this.#loads = run.catch(() => undefined);
        return run;
      },
    };
  }

  /** Starts loading every project that has data, one after the other, in the background. */
  warm(): void {
    this.#warming = true;
    void (async () => {
      try {
        const { rows } = await this.#deps.pool.query<{ project: string }>(
          'SELECT project FROM tally.data_versions ORDER BY project',
        );
        for (const { project } of rows) {
          if (this.#stop.signal.aborted) return;
          await this.#project(project).reload();
        }
      } catch (err) {
        this.#deps.logger.warn({ err }, 'read model: could not list the projects to load');
      } finally {
        this.#warming = false;
      }
    })();
  }

  /**
   * The layers answering for `project` at its current data version (or a later one), or
   * undefined when the model cannot answer now or within `waitMs` (the caller reads PostgreSQL).
   */
  async at(
    project: string,
    waitMs = this.#deps.catchUpWaitMs ?? DEFAULT_CATCH_UP_WAIT_MS,
  ): Promise<Layers | undefined> {
    const layers = this.#stop.signal.aborted
      ? undefined
      : await this.#project(project).at(await this.#deps.version(project), waitMs);
    this.#deps.metrics.readModelAnswers.inc({ source: layers === undefined ? 'postgres' : 'model' });
    return layers;
  }

  /**
   * Loads `project` if it is not, and resolves once the model answers at the project's current
   * version (true), or could not (false: a load failed, or the data keeps moving past the feed).
   */
  async ready(project: string): Promise<boolean> {
    const p = this.#project(project);
    for (let attempt = 0; attempt < 3 && !this.#stop.signal.aborted; attempt++) {
      await p.settled();
      const want = await this.#deps.version(project);
      if ((await p.at(want, Number.POSITIVE_INFINITY)) !== undefined) return true;
    }
    return false;
  }

  #held(): number {
    let n = 0;
    for (const p of this.#projects.values()) n += p.events;
    return n;
  }

  /** `degraded` while a project is loading or behind what the feed can describe; never `down`. */
  get health(): HealthCheck {
    return {
      name: 'read_model',
      check: () =>
        Promise.resolve(
          !this.#warming && [...this.#projects.values()].every((p) => p.ready) ? 'ok' : 'degraded',
        ),
    };
  }

  /** Stops loading and answering; resolves once no load holds a connection. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.allSettled([...this.#projects.values()].map((p) => p.settled()));
  }

  #project(project: string): ProjectModel {
    let p = this.#projects.get(project);
    if (p === undefined) {
      const onChange = () => this.#deps.metrics.readModelEvents.set(this.#held());
      this.#projects.set(project, (p = new ProjectModel(project, this.#deps, onChange)));
      void p.reload();
    }
    return p;
  }
}
