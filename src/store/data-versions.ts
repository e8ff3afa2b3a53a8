import pg from 'pg';
import type { Logger } from 'pino';
import { withTimeout } from '../util/with-timeout.ts';

/**
 * The per-project data version behind the query cache: a counter in `tally.data_versions` that
 * every committing batch bumps inside its own transaction (tally.write_events, migration 009,
 * called by src/store/write-events.ts).
 *
 * TRICKY: the bump must be transactional with the data. A counter bumped outside the transaction
 * (a sequence's nextval, a Redis INCR before COMMIT) can be seen before the data, and an answer
 * computed from the old data would then be cached under the new version and outlive the commit.
 * A Redis INCR after COMMIT is late instead, and lost whenever the writer cannot reach Redis.
 * Readers take the version first and the data second, so an answer is always stored under a
 * version no newer than the data it was computed from.
 *
 * Every bump also sends `NOTIFY tally_data_versions, '<version> <project>'`. PostgreSQL delivers
 * it only once the transaction has committed and is visible, so readers can keep the versions in
 * memory (DataVersions below) instead of reading the row on every cached query.
 */
export const VERSIONS_CHANNEL = 'tally_data_versions';

/**
 * Bumps the data version of each of `projects` (a missing row starts at 1), or of every project
 * that has one with `'all'`, and announces each new version on commit. Call it inside the
 * transaction that changes the data. The rows are locked in the batches' order (`COLLATE "C"`,
 * tally.write_events), so a bump never waits on a batch in a cycle.
 */
export async function bumpDataVersions(
  db: Pick<pg.ClientBase, 'query'>,
  projects: readonly string[] | 'all',
): Promise<void> {
  await db.query(
    `WITH v AS (
       INSERT INTO tally.data_versions AS v (project, version)
       SELECT DISTINCT p COLLATE "C", 1
         FROM unnest(coalesce($1::text[], ARRAY(SELECT project FROM tally.data_versions))) AS p
        ORDER BY 1
       ON CONFLICT (project) DO UPDATE SET version = v.version + 1, updated_at = now()
       RETURNING project, version
     )
     SELECT pg_notify('${VERSIONS_CHANNEL}', version || ' ' || project) FROM v`,
    [projects === 'all' ? null : projects],
  );
}

/** Bumps every project's version (retention dropped raw rows of all of them). */
export async function bumpAllDataVersions(pool: pg.Pool): Promise<void> {
  await bumpDataVersions(pool, 'all');
}

interface VersionRow {
  project: string;
  version: string | number;
}

/** How often a live listener re-reads every version and thereby proves its connection alive. */
const RESYNC_INTERVAL_MS = 5000;
/** A resync (or connect) taking longer than this counts as a dead connection. */
const RESYNC_TIMEOUT_MS = 2000;
const RECONNECT_MIN_DELAY_MS = 200;
const RECONNECT_MAX_DELAY_MS = 5000;

/**
 * The current data version of each project, for the query cache.
 *
 * Started (`start()`), it LISTENs on the versions channel and keeps every project's version in
 * memory, so a cached answer costs no PostgreSQL round trip. Versions only move forward: a
 * notification, a resync and `observe()` all keep the larger value. While the listening
 * connection is down (not started yet, PostgreSQL restarting, a resync timing out) `current()`
 * reads the row as before; on reconnect it LISTENs first and reads every version second, so no
 * bump falls between the two. A resync every few seconds also bounds how long a notification
 * lost in some unforeseen way could keep an old version.
 *
 * Freshness: a version reaches this process a moment after the commit (the notification's trip).
 * Writers in this process (`tally start`) call `observe()` right after their commit, before the
 * client's 202, so a client reading its own writes never gets an answer cached before them.
 */
export class DataVersions {
  readonly #pool: pg.Pool;
  readonly #logger: Logger | undefined;
  readonly #versions = new Map<string, number>();
  #client: pg.Client | undefined;
  #live = false;
  #stopped = false;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(pool: pg.Pool, logger?: Logger) {
    this.#pool = pool;
    this.#logger = logger;
  }

  /** True while versions come from memory (the listener is connected and in sync). */
  get live(): boolean {
    return this.#live;
  }

  /** Starts listening in the background; `current()` reads PostgreSQL until it is connected. */
  start(): void {
    this.#stopped = false;
    void this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#drop();
  }

  async current(project: string): Promise<number> {
    if (this.#live) return this.#versions.get(project) ?? 0;
    const { rows } = await this.#pool.query<VersionRow>(
      'SELECT project, version FROM tally.data_versions WHERE project = $1',
      [project],
    );
    const version = rows.length === 0 ? 0 : Number(rows[0].version);
    this.#merge(project, version);
    return version;
  }

  /** New versions committed by this process (BatchWriter's `onVersions`). */
  observe(versions: ReadonlyMap<string, number>): void {
    for (const [project, version] of versions) this.#merge(project, version);
  }

  #merge(project: string, version: number): void {
    if (version > (this.#versions.get(project) ?? 0)) this.#versions.set(project, version);
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const client = new pg.Client({
      connectionString: this.#pool.options.connectionString,
      application_name: 'tally-versions',
      connectionTimeoutMillis: RESYNC_TIMEOUT_MS,
      keepAlive: true,
    });
    this.#client = client;
    client.on('notification', (n) => {
      if (n.channel !== VERSIONS_CHANNEL || n.payload === undefined) return;
      const space = n.payload.indexOf(' ');
      this.#merge(n.payload.slice(space + 1), Number(n.payload.slice(0, space)));
    });
    // Errors also surface through the pending query (if any); either way, start over.
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, new Error('connection ended')));
    try {
      await withTimeout(client.connect(), RESYNC_TIMEOUT_MS, timedOut('connect'));
      await withTimeout(client.query(`LISTEN ${VERSIONS_CHANNEL}`), RESYNC_TIMEOUT_MS, timedOut('LISTEN'));
      await this.#resync(client);
    } catch (err) {
      this.#lost(client, err);
      return;
    }
    if (this.#client !== client) return;
    this.#live = true;
    this.#failures = 0;
    this.#logger?.debug('data versions: listening');
    this.#scheduleResync(client);
  }

  async #resync(client: pg.Client): Promise<void> {
    const { rows } = await withTimeout(
      client.query<VersionRow>('SELECT project, version FROM tally.data_versions'),
      RESYNC_TIMEOUT_MS,
      timedOut('resync'),
    );
    for (const r of rows) this.#merge(r.project, Number(r.version));
  }

  #scheduleResync(client: pg.Client): void {
    this.#timer = setTimeout(() => {
      this.#resync(client).then(
        () => this.#client === client && this.#scheduleResync(client),
        (err: unknown) => this.#lost(client, err),
      );
    }, RESYNC_INTERVAL_MS);
    this.#timer.unref();
  }

  /** The listener failed: read PostgreSQL per query until a new one is in sync. */
  #lost(client: pg.Client, err: unknown): void {
    if (this.#client !== client) return;
    this.#live = false;
    clearTimeout(this.#timer);
    void this.#drop();
    if (this.#stopped) return;
    this.#failures += 1;
    this.#logger?.warn({ err }, 'data versions: listener lost; reading versions per query until it is back');
    const ceiling = Math.min(RECONNECT_MAX_DELAY_MS, RECONNECT_MIN_DELAY_MS * 2 ** this.#failures);
    this.#timer = setTimeout(() => void this.#connect(), ceiling / 2 + Math.random() * (ceiling / 2));
    this.#timer.unref();
  }

  async #drop(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.#live = false;
    // A connection to a vanished server may never finish closing.
    await withTimeout(client?.end() ?? Promise.resolve(), RESYNC_TIMEOUT_MS, timedOut('close')).catch(
      () => undefined,
    );
  }
}

function timedOut(what: string): () => Error {
  return () => new Error(`data versions: ${what} took over ${RESYNC_TIMEOUT_MS} ms`);
}
