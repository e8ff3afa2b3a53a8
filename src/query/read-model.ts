import type pg from 'pg';
import type { Logger } from 'pino';
import type { HealthCheck } from '../observability/health.ts';
import type { Metrics } from '../observability/metrics.ts';
import { readModelRows } from '../store/model-rows.ts';
import { ColumnarBuilder } from './columnar/builder.ts';
import { Layers } from './columnar/layers.ts';

export interface ReadModelDeps {
  pool: pg.Pool;
  /** The data version a question must see (the query cache's: src/store/data-versions.ts). */
  version: (project: string) => Promise<number>;
  /** Epoch ms from which raw rows are kept (TALLY_RAW_RETENTION_DAYS). */
  cutoff: () => number;
  logger: Logger;
  metrics: Pick<Metrics, 'readModelAnswers' | 'readModelEvents'>;
  /** Aborted when the process stops: a load in progress ends at its next fetch. */
  signal: AbortSignal;
  /**
   * Runs a full load when no other load of this process runs: one at a time, so loads (each
   * holding a connection for minutes at 10 M events, and a second copy of a project's model
   * while it builds) never take the pool the PostgreSQL answers need meanwhile.
   */
  oneLoadAtATime: <T>(load: () => Promise<T>) => Promise<T>;
  /** Reload once the deltas hold more than this share of the base's events. */
  maxDeltaShare?: number;
  /** …or once there are more layers than this. */
  maxLayers?: number;
}

const DEFAULT_DELTA_SHARE = 0.05;
const DEFAULT_MAX_LAYERS = 32;
/** After a failed load, the next question may start another only this much later. */
const RELOAD_BACKOFF_MS = 5000;
/** After a failed catch-up, PostgreSQL answers for this long before the model tries again. */
const CATCH_UP_BACKOFF_MS = 5000;

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
   * undefined when the model cannot answer now (the caller reads PostgreSQL).
   */
  async at(project: string): Promise<Layers | undefined> {
    const layers = this.#stop.signal.aborted
      ? undefined
      : await this.#project(project).at(await this.#deps.version(project));
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
      if ((await p.at(await this.#deps.version(project))) !== undefined) return true;
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

class ProjectModel {
  readonly #project: string;
  readonly #deps: ReadModelDeps;
  #layers: Layers | undefined;
  /** The data version the layers hold. */
  #version = -1;
  /** The layers cannot move forward (the feed misses a version): only a reload helps. */
  #stale = false;
  #loading: Promise<void> | undefined;
  #catching: Promise<void> | undefined;
  #failedAt = Number.NEGATIVE_INFINITY;
  #catchFailedAt = Number.NEGATIVE_INFINITY;
  readonly #onChange: () => void;

  constructor(project: string, deps: ReadModelDeps, onChange: () => void) {
    this.#project = project;
    this.#deps = deps;
    this.#onChange = onChange;
  }

  get ready(): boolean {
    return this.#layers !== undefined && !this.#stale;
  }

  get events(): number {
    return this.#layers === undefined ? 0 : this.#layers.baseEvents + this.#layers.deltaEvents;
  }

  async at(want: number): Promise<Layers | undefined> {
    if (this.#layers === undefined || this.#stale) {
      this.#reloadSoon();
      return undefined;
    }
    // Twice at most: a catch-up already running may have taken its snapshot before `want` committed.
    for (let attempt = 0; attempt < 2 && this.#version < want && !this.#stale; attempt++) {
      if (Date.now() - this.#catchFailedAt < CATCH_UP_BACKOFF_MS) return undefined;
      this.#catching ??= this.#catchUp()
        .catch((err: unknown) => {
          // Logged once per failed catch-up (not per waiting question); PostgreSQL answers meanwhile.
          this.#catchFailedAt = Date.now();
          if (!this.#deps.signal.aborted) {
            this.#deps.logger.warn({ err, project: this.#project }, 'read model: catch-up failed');
          }
        })
        .finally(() => (this.#catching = undefined));
      await this.#catching;
    }
    return this.#version >= want && !this.#stale ? this.#layers : undefined;
  }

  /** Resolves when no load or catch-up of this project is in flight. */
  async settled(): Promise<void> {
    await Promise.allSettled([this.#loading, this.#catching]);
  }

  /** Loads every raw row of the project into a new base, then swaps it in (single flight). */
  reload(): Promise<void> {
    this.#loading ??= this.#deps
      .oneLoadAtATime(() => (this.#deps.signal.aborted ? Promise.resolve() : this.#load()))
      .catch((err: unknown) => {
        this.#failedAt = Date.now();
        if (this.#deps.signal.aborted) return;
        this.#deps.logger.warn({ err, project: this.#project }, 'read model: load failed');
      })
      .finally(() => (this.#loading = undefined));
    return this.#loading;
  }

  #reloadSoon(): void {
    if (Date.now() - this.#failedAt >= RELOAD_BACKOFF_MS) void this.reload();
  }

  async #load(): Promise<void> {
    const started = Date.now();
    const builder = new ColumnarBuilder();
    const read = await readModelRows(
      this.#deps.pool,
      this.#project,
      this.#deps.cutoff(),
      undefined,
      builder,
      this.#deps.signal,
    );
    const layers = new Layers(builder.build());
    layers.prepareSummary();
    // A catch-up of the old layers may have gone past this snapshot: it stays behind, and the
    // next question catches the new layers up from their own version.
    this.#layers = layers;
    this.#version = read.version;
    this.#stale = false;
    this.#onChange();
    this.#deps.logger.info(
      { project: this.#project, events: layers.baseEvents, version: read.version, ms: Date.now() - started },
      'read model loaded',
    );
  }

  async #catchUp(): Promise<void> {
    const started = Date.now();
    const layers = this.#layers!;
    const builder = new ColumnarBuilder();
    const read = await readModelRows(
      this.#deps.pool,
      this.#project,
      this.#deps.cutoff(),
      this.#version,
      builder,
      this.#deps.signal,
    );
    // Swapped by a reload meanwhile: the new layers have their own version.
    if (this.#layers !== layers) return;
    if (!read.complete) {
      this.#stale = true;
      void this.reload();
      return;
    }
    let events = 0;
    if (read.users.length > 0) {
      const delta = builder.build();
      events = delta.events.count;
      layers.push(delta, read.users);
      this.#onChange();
    }
    // A catch-up reads its users' whole rows: with many users changed it costs a load (docs/benchmarks.md, scenario 5).
    this.#deps.logger.debug(
      {
        project: this.#project,
        users: read.users.length,
        events,
        version: read.version,
        ms: Date.now() - started,
      },
      'read model caught up',
    );
    this.#version = read.version;
    const share = this.#deps.maxDeltaShare ?? DEFAULT_DELTA_SHARE;
    const tooMany = layers.count > (this.#deps.maxLayers ?? DEFAULT_MAX_LAYERS);
    if (tooMany || layers.deltaEvents > share * Math.max(layers.baseEvents, 10_000)) void this.reload();
  }
}
