import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';
import { readModelRows } from '../store/model-rows.ts';
import { ColumnarBuilder } from './columnar/builder.ts';
import type { Layers } from './columnar/layers.ts';
import { loadInWorker, type LoadRequest } from './columnar/load.ts';

export interface ReadModelDeps {
  pool: pg.Pool;
  /** The data version a question must see (the query cache's: src/store/data-versions.ts). */
  version: (project: string) => Promise<number>;
  /** Epoch ms from which raw rows are kept (TALLY_RAW_RETENTION_DAYS). */
  cutoff: () => number;
  logger: Logger;
  metrics: Pick<Metrics, 'readModelAnswers' | 'readModelEvents'>;
  /** Aborted when the process stops: a load in progress ends at once (its worker thread is ended). */
  signal: AbortSignal;
  /**
   * Runs a full load when no other load of this process runs: one at a time, so loads (each
   * holding a connection of its own for minutes at 10 M events, a core, and a second copy of a
   * project's model while it builds) never take what the PostgreSQL answers need meanwhile.
   */
  oneLoadAtATime: <T>(load: () => Promise<T>) => Promise<T>;
  /** Reload once the deltas hold more than this share of the base's events. */
  maxDeltaShare?: number;
  /** …or once there are more layers than this. */
  maxLayers?: number;
  /**
   * How long a question waits for the catch-up it needs before PostgreSQL answers it instead;
   * the catch-up goes on for the questions after it.
   */
  catchUpWaitMs?: number;
}

/** docs/benchmarks.md, "Scenario 5 at full size": most catch-ups end well within it. */
export const DEFAULT_CATCH_UP_WAIT_MS = 250;
const DEFAULT_DELTA_SHARE = 0.05;
const DEFAULT_MAX_LAYERS = 32;
/** After a failed load, the next question may start another only this much later. */
const RELOAD_BACKOFF_MS = 5000;
/** After a failed catch-up, PostgreSQL answers for this long before the model tries again. */
const CATCH_UP_BACKOFF_MS = 5000;
/** The spacing after loads overtaken one after the other, at most: loading then takes 1/9 of the time. */
const MAX_SPACING = 8;

/**
 * The read model of one project (src/query/read-model.ts): its layers, the data version they
 * hold, and the one load and one catch-up that may be in flight.
 *
 * What the model spends on staying current is bounded, so that it does not re-read the project
 * over and over when users change faster than it can read them (docs/benchmarks.md, scenario 5):
 * - a question waits for a catch-up at most `catchUpWaitMs`, then PostgreSQL answers it;
 * - a catch-up that would take the deltas past twice a reload threshold (its users times the
 *   base's mean events per user, or twice `maxLayers` layers) reads no rows: the reload that would
 *   follow it is made instead, and PostgreSQL answers until it lands;
 * - a load starts no sooner than the last one's duration after it ended, so loading takes at
 *   most half the time; twice that after a load that bought less model time than it cost (its
 *   layers caught up for a shorter time than it took before they asked for the next load, deltas
 *   past the threshold or too much changed; never, if overtaken as they landed), and so on up to
 *   MAX_SPACING times; back to once after a load whose layers caught up for longer than it took.
 * Catch-ups go on while a reload reads (each within the limit above): they answer until it lands.
 */
export class ProjectModel {
  readonly #project: string;
  readonly #deps: ReadModelDeps;
  #layers: Layers | undefined;
  /** The data version the layers hold. */
  #version = -1;
  /** The layers cannot move forward (the feed misses a version, or too much changed): only a reload helps. */
  #stale = false;
  #loading: Promise<void> | undefined;
  #catching: Promise<void> | undefined;
  #failedAt = Number.NEGATIVE_INFINITY;
  #catchFailedAt = Number.NEGATIVE_INFINITY;
  /** The last load: when it ended and how long it took. */
  #lastLoad = { ended: Number.NEGATIVE_INFINITY, ms: 0 };
  /** The next load starts no sooner than this many times the last one's duration after it ended. */
  #spacing = 1;
  /** When the layers were swapped in; undefined once they asked for the next load. */
  #landedAt: number | undefined;
  /** When the layers last caught up (or landed): until then they answered current questions. */
  #currentAt = Number.NEGATIVE_INFINITY;
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

  /**
   * The layers once they hold version `want` (or a later one); undefined when they do not within
   * `waitMs` (the caller answers from PostgreSQL), or cannot (loading, behind).
   */
  async at(want: number, waitMs: number): Promise<Layers | undefined> {
    if (this.#layers === undefined || this.#stale) {
      this.#reloadSoon();
      return undefined;
    }
    const deadline = Date.now() + waitMs;
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
      // Past the wait PostgreSQL answers; the catch-up goes on, for the questions after this one.
      if (!(await settlesWithin(this.#catching, deadline - Date.now()))) return undefined;
    }
    return this.#version >= want && !this.#stale ? this.#layers : undefined;
  }

  /** Resolves when no load or catch-up of this project is in flight. */
  async settled(): Promise<void> {
    await Promise.allSettled([this.#loading, this.#catching]);
  }

  /**
   * Loads every raw row of the project into a new base, then swaps it in (single flight), once
   * the spacing rule lets it start.
   */
  reload(): Promise<void> {
    this.#loading ??= this.#spaced()
      .then(() =>
        this.#deps.oneLoadAtATime(() => (this.#deps.signal.aborted ? Promise.resolve() : this.#load())),
      )
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

  /** Resolves once a load may start: `#spacing` times the last one's duration after it ended. */
  async #spaced(): Promise<void> {
    const next = () => this.#lastLoad.ended + this.#spacing * this.#lastLoad.ms;
    // A timer may fire a millisecond early by Date.now(): the rule is checked on that clock.
    for (let left = next() - Date.now(); left > 0; left = next() - Date.now()) {
      await sleep(left, undefined, { signal: this.#deps.signal, ref: false });
    }
  }

  /**
   * The layers ask for the next load (deltas past the threshold, too much changed): the load that
   * made them bought less model time than it cost if they caught up for a shorter time than it
   * took (not at all: overtaken as they landed), and the spacing doubles; otherwise it is back to
   * once. Judged once per load.
   */
  #outgrown(): void {
    if (this.#landedAt !== undefined) {
      const lived = this.#currentAt - this.#landedAt;
      this.#spacing = lived < this.#lastLoad.ms ? Math.min(2 * this.#spacing, MAX_SPACING) : 1;
      this.#landedAt = undefined;
    }
    void this.reload();
  }

  async #load(): Promise<void> {
    const started = Date.now();
    try {
      const read = await loadInWorker(
        {
          connection: loadConnection(this.#deps.pool),
          project: this.#project,
          cutoffMs: this.#deps.cutoff(),
        },
        this.#deps.signal,
      );
      const { layers } = read;
      // A catch-up of the old layers may have gone past this snapshot: it stays behind, and the
      // next question catches the new layers up from their own version.
      this.#layers = layers;
      this.#version = read.version;
      this.#stale = false;
      this.#landedAt = this.#currentAt = Date.now();
      this.#onChange();
      this.#deps.logger.info(
        {
          project: this.#project,
          events: layers.baseEvents,
          version: read.version,
          ms: Date.now() - started,
        },
        'read model loaded',
      );
    } finally {
      // Failed loads too: the one after a failure waits as long as it took (and the backoff).
      const ended = Date.now();
      this.#lastLoad = { ended, ms: ended - started };
    }
  }

  async #catchUp(): Promise<void> {
    const started = Date.now();
    const layers = this.#layers!;
    const builder = new ColumnarBuilder();
    const maxUsers = this.#catchUpLimit(layers);
    const read = await readModelRows(
      this.#deps.pool,
      this.#project,
      this.#deps.cutoff(),
      this.#version,
      builder,
      this.#deps.signal,
      maxUsers,
    );
    // Swapped by a reload meanwhile: the new layers have their own version.
    if (this.#layers !== layers) return;
    if (!read.complete || read.skipped) {
      // Every later catch-up of these layers would name these users too: only a reload helps.
      this.#stale = true;
      if (read.skipped) this.#outgrown();
      else void this.reload();
      this.#deps.logger.debug(
        {
          project: this.#project,
          reason: read.complete ? 'too many users changed' : 'a version the feed does not describe',
          users: read.users.length,
          maxUsers,
          version: read.version,
          spacing: this.#spacing,
        },
        'read model behind',
      );
      return;
    }
    let events = 0;
    if (read.users.length > 0) {
      const delta = builder.build();
      events = delta.events.count;
      layers.push(delta, read.users);
      this.#onChange();
    }
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
    this.#currentAt = Date.now();
    const share = this.#deps.maxDeltaShare ?? DEFAULT_DELTA_SHARE;
    const tooMany = layers.count > (this.#deps.maxLayers ?? DEFAULT_MAX_LAYERS);
    if (tooMany || layers.deltaEvents > share * Math.max(layers.baseEvents, 10_000)) this.#outgrown();
  }

  /**
   * The most users a catch-up of `layers` may re-read (their whole rows): as many as keep the
   * deltas within twice the reload threshold, at the base's mean events per user; none past
   * twice `maxLayers` layers. Past it the reload the catch-up would be followed by comes first.
   */
  #catchUpLimit(layers: Layers): number {
    const share = this.#deps.maxDeltaShare ?? DEFAULT_DELTA_SHARE;
    if (layers.count >= 2 * (this.#deps.maxLayers ?? DEFAULT_MAX_LAYERS)) return 0;
    const room = 2 * share * Math.max(layers.baseEvents, 10_000) - layers.deltaEvents;
    const perUser = Math.max(1, layers.baseEvents / Math.max(1, layers.baseUsers));
    return Math.max(0, Math.floor(room / perUser));
  }
}

/** Whether `p` (which never rejects) settles within `ms`; Infinity waits for it. */
function settlesWithin(p: Promise<void>, ms: number): Promise<boolean> {
  if (ms === Number.POSITIVE_INFINITY) return p.then(() => true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), Math.max(0, ms));
    void p.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * The connection a load worker opens: to the database of `pool` (Tally's pools are made from a
 * connection string: src/store/pool.ts), named apart in pg_stat_activity.
 */
function loadConnection(pool: pg.Pool): LoadRequest['connection'] {
  const { connectionString } = pool.options;
  if (connectionString === undefined)
    throw new Error('the read model loads only through a pool made from a connection string');
  return { connectionString, applicationName: 'tally-read-model-load' };
}
