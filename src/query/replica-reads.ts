import type pg from 'pg';
import type { Logger } from 'pino';
import { TallyError } from '../errors/tally-error.ts';
import type { HealthCheck } from '../observability/health.ts';
import type { Metrics } from '../observability/metrics.ts';
import { BEGIN_SNAPSHOT, type Queryable } from '../store/read-snapshot.ts';

/** Who answered a question, for the response's headers (routes.ts). */
export interface ReadInfo {
  /** `cache`: an answer stored at the version this process knows; `primary` includes the read model. */
  source: 'cache' | 'primary' | 'replica';
  /** How far behind the data of the answer may be, in ms (0 but from a replica that is behind). */
  lagMs: number;
}

/** An answer computed on the replica, with the version and the lag of the snapshot it read. */
export interface ReplicaAnswer<T> {
  value: T;
  /** The data version the replica's snapshot held; undefined: the answer read no table (the read model answered). */
  version: number | undefined;
  lagMs: number;
}

export interface ReplicaReadsDeps {
  pool: pg.Pool;
  /** Answers from a replica further behind than this go to the primary (TALLY_READ_MAX_LAG_MS). */
  maxLagMs: number;
  logger: Logger;
  metrics: Pick<Metrics, 'replicaFallbacks' | 'replicaLagMs'>;
  /** After the replica could not be reached, the primary answers alone for this long. */
  retryMs?: number;
}

const RETRY_MS = 1000;

/**
 * Reads from a streaming hot-standby replica (TALLY_READ_DATABASE_URL), and says when not to.
 *
 * Each answer runs on ONE snapshot of the replica (read-only REPEATABLE READ, opened at its first
 * statement), whose first statement also reads the project's `tally.data_versions` row and the
 * replay lag: the version is then exactly the data the answer saw, and the cache keys the answer
 * by it (QueryCache.throughAt). NOTIFY does not reach a standby's listeners, so the version a
 * question looks up still comes from the primary (DataVersions); the replica's may be older, or
 * newer when its notification has not arrived yet.
 *
 * Lag: 0 when the replica holds at least the project's version this process knows; otherwise the
 * time since the last transaction it replayed committed on the primary (pg_last_xact_replay_timestamp):
 * what it misses committed later, so no longer ago than that (clocks of both hosts assumed in step). A snapshot further behind than `maxLagMs`, a replica that cannot be reached (then skipped
 * for `retryMs`) or any error of its own (a query cancelled by recovery, a lost connection): the
 * answer is `undefined` and the caller asks the primary. A TallyError is the question's own (too
 * expensive, raw rows missing) and is thrown: the primary would say the same.
 */
export class ReplicaReads {
  readonly #deps: ReplicaReadsDeps;
  #downUntil = 0;
  #lastWarn = 0;

  constructor(deps: ReplicaReadsDeps) {
    this.#deps = deps;
  }

  /** `compute` on one snapshot of the replica, or undefined when the primary should answer. */
  async answer<T>(
    project: string,
    known: number,
    compute: (db: Queryable) => Promise<T>,
  ): Promise<ReplicaAnswer<T> | undefined> {
    if (Date.now() < this.#downUntil) {
      this.#deps.metrics.replicaFallbacks.inc({ reason: 'unreachable' });
      return undefined;
    }
    const { metrics } = this.#deps;
    const snapshot = new ReplicaSnapshot(this.#deps.pool, project, known, this.#deps.maxLagMs, (lagMs) =>
      metrics.replicaLagMs.set(Number.isFinite(lagMs) ? lagMs : -1),
    );
    try {
      const value = await compute(snapshot.db);
      const read = await snapshot.commit();
      return { value, version: read?.version, lagMs: read?.lagMs ?? 0 };
    } catch (err) {
      await snapshot.abandon();
      if (err instanceof TallyError) throw err;
      if (err instanceof TooFarBehind) {
        metrics.replicaFallbacks.inc({ reason: 'lag' });
        return undefined;
      }
      if (!snapshot.opened) this.#downUntil = Date.now() + (this.#deps.retryMs ?? RETRY_MS);
      metrics.replicaFallbacks.inc({ reason: snapshot.opened ? 'error' : 'unreachable' });
      this.#warn(err);
      return undefined;
    }
  }

  /** `degraded` while the replica cannot be reached (the primary answers); never `down`. */
  get health(): HealthCheck {
    return {
      name: 'read_replica',
      check: () =>
        this.#deps.pool.query('SELECT 1').then(
          () => 'ok' as const,
          () => 'degraded' as const,
        ),
    };
  }

  async stop(): Promise<void> {
    await this.#deps.pool.end();
  }

  #warn(err: unknown): void {
    // A replica outage would otherwise log once per query.
    const now = Date.now();
    if (now - this.#lastWarn < 10_000) return;
    this.#lastWarn = now;
    this.#deps.logger.warn({ err }, 'read replica failed; answering from the primary');
  }
}

/** The replica's snapshot is further behind than the bound: the primary answers instead. */
class TooFarBehind extends Error {}

interface Opened {
  version: number;
  lagMs: number;
}

export interface StateRow {
  version: number | null;
  standby: boolean;
  since_replay_ms: number | null;
}

/**
 * One answer's read-only snapshot on the replica, begun at its first statement; statements
 * started together run in turn on its one client (as readSnapshot's do).
 */
class ReplicaSnapshot {
  readonly #pool: pg.Pool;
  readonly #project: string;
  readonly #known: number;
  readonly #maxLagMs: number;
  readonly #onLag: (lagMs: number) => void;
  #client: pg.PoolClient | undefined;
  #opening: Promise<Opened> | undefined;
  #last: Promise<unknown> = Promise.resolve();
  /** True once a connection is held: later failures are of a statement, not of reaching the replica. */
  opened = false;
  readonly db: Queryable;

  constructor(
    pool: pg.Pool,
    project: string,
    known: number,
    maxLagMs: number,
    onLag: (lagMs: number) => void,
  ) {
    this.#pool = pool;
    this.#project = project;
    this.#known = known;
    this.#maxLagMs = maxLagMs;
    this.#onLag = onLag;
    const query = (...args: unknown[]) => {
      const run = this.#last.then(() => this.#open()).then(() => this.#send(args));
      this.#last = run.catch(() => undefined);
      return run;
    };
    this.db = { query } as Queryable;
  }

  #send(args: unknown[]): Promise<unknown> {
    const client = this.#client as pg.PoolClient;
    return (client.query as (...a: unknown[]) => Promise<unknown>).apply(client, args);
  }

  #open(): Promise<Opened> {
    this.#opening ??= (async () => {
      const client = await this.#pool.connect();
      this.#client = client;
      this.opened = true;
      await client.query(BEGIN_SNAPSHOT);
      // TRICKY: the first statement takes the transaction's snapshot, so the version read here is
      // the one every later statement of the answer sees.
      const { rows } = await client.query<StateRow>(
        `SELECT (SELECT version FROM tally.data_versions WHERE project = $1) AS version,
                pg_is_in_recovery() AS standby,
                (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::float8
                  AS since_replay_ms`,
        [this.#project],
      );
      const opened = openedAt(rows[0], this.#known);
      this.#onLag(opened.lagMs);
      if (opened.lagMs > this.#maxLagMs) throw new TooFarBehind(`replica ${opened.lagMs} ms behind`);
      return opened;
    })();
    return this.#opening;
  }

  /** Ends the snapshot; its version and lag, or undefined when the answer read nothing. */
  async commit(): Promise<Opened | undefined> {
    await this.#last;
    if (this.#opening === undefined) return undefined;
    const opened = await this.#opening;
    const client = this.#client as pg.PoolClient;
    this.#client = undefined;
    await client.query('COMMIT');
    client.release();
    return opened;
  }

  /** Rolls back and releases, after a failure; never throws. */
  async abandon(): Promise<void> {
    await this.#last;
    const client = this.#client;
    this.#client = undefined;
    if (client === undefined) return;
    // A client whose ROLLBACK fails is broken: destroy it rather than return it to the pool.
    await client.query('ROLLBACK').then(
      () => client.release(),
      (err: unknown) => client.release(err instanceof Error ? err : true),
    );
  }
}

/**
 * The version and lag of a replica's snapshot, from its state row and the version `known` to this
 * process (the primary's, through NOTIFY). Behind only when its version is older than the known
 * one: the WAL it has not replayed then holds a commit of the project. WAL of other projects, or of
 * none (vacuum, checkpoints), leaves the answer whole, so the replay LSNs are not what counts.
 */
export function openedAt(row: StateRow, known: number): Opened {
  const version = Number(row.version ?? 0);
  if (!row.standby || version >= known) return { version, lagMs: 0 };
  // Replay is in commit order: what it lacks committed after the last transaction it replayed.
  const since = row.since_replay_ms;
  return { version, lagMs: since === null ? Number.POSITIVE_INFINITY : Math.max(0, Math.ceil(since)) };
}
