import type pg from 'pg';
import type { EventRow, VisitRow } from '../query/columnar/rows.ts';
import { readModelChanges } from './model-feed.ts';
import { BEGIN_SNAPSHOT, type Queryable } from './read-snapshot.ts';

/** Where the rows of a load go, as they stream in (the columnar builder). */
export interface ModelRowSink {
  addEvent(row: EventRow): void;
  addVisit(row: VisitRow): void;
}

/** What a load read: the data version its snapshot holds, and for a catch-up, what changed. */
export interface ModelRows {
  version: number;
  /** Catch-up only: false when a version in the interval has no feed row (reload everything). */
  complete: boolean;
  /** Catch-up only: the users whose rows were read (every user the feed names). */
  users: string[];
  /** Catch-up only: the feed named more than `maxUsers` users, so none of their rows were read. */
  skipped: boolean;
}

/** Rows per FETCH: big enough to amortize the round trip, small enough to stream. */
const FETCH_ROWS = 20_000;

/**
 * A tally.events row as src/query/columnar/rows.ts's EventRow. TRICKY: a property that is not
 * a JSON string must read as `->>`'s text (jsonb keeps `1.0`, JSON.stringify would write `1`),
 * so the properties come back as an object of `jsonb_each_text`'s texts, not as the jsonb.
 */
const EVENT_COLUMNS = `e.user_id, (extract(epoch FROM e.ts) * 1000)::float8 AS ts, e.type, e.session_id,
  e.path, e.hostname, e.browser, e.os, e.device, e.country, e.is_bot,
  (SELECT json_object_agg(p.key, p.value) FROM jsonb_each_text(e.properties) p) AS properties`;

const VISIT_COLUMNS = `s.user_id, s.session_key,
  (extract(epoch FROM s.started_at) * 1000)::float8 AS started_at,
  (extract(epoch FROM s.ended_at) * 1000)::float8 AS ended_at,
  s.events, s.page_views, s.entry_page, s.exit_page, s.is_bot, s.referrer_host, s.channel,
  s.utm_source, s.utm_medium, s.utm_campaign, s.utm_term, s.utm_content`;

/**
 * Reads, on ONE snapshot, what the columnar read model of `project` is built from: the project's
 * data version, then either every raw event at or after `cutoffMs` and every visit ending there
 * (a full load: readModelBase, in the load worker), or the change feed after version `since`
 * (migration 018) and the rows of the users it names (a catch-up, here). Versions and rows are
 * read together, so the model
 * holds exactly the data of the version it reports. A catch-up naming more than `maxUsers` users
 * reads none of their rows (`skipped`): the read model reloads instead (src/query/read-model.ts).
 *
 * Visits that end at or after the cutoff are all read, those that started before it included:
 * an event in range belongs to its visit wherever the visit starts (visit filters read it).
 */
export async function readModelRows(
  pool: pg.Pool,
  project: string,
  cutoffMs: number,
  since: number,
  sink: ModelRowSink,
  signal?: AbortSignal,
  maxUsers = Number.POSITIVE_INFINITY,
): Promise<ModelRows> {
  return onSnapshot(pool, (client) => readOn(client, project, cutoffMs, since, sink, signal, maxUsers));
}

/**
 * The raw events of `project` in [fromMs, toMs) and every visit holding one (ending at or after
 * `fromMs`, starting before `toMs`), on one snapshot, for a question the read model cannot answer
 * (src/query/product/product-service.ts); unless there are more than `atMost` such events: then
 * nothing is read and false returned. The count reads at most `atMost + 1` index entries.
 */
export async function readRangeRows(
  pool: pg.Pool,
  project: string,
  range: { fromMs: number; toMs: number },
  atMost: number,
  sink: ModelRowSink,
): Promise<boolean> {
  return onSnapshot(pool, (client) => readRangeRowsIn(client, project, range, atMost, sink));
}

/** As readRangeRows, on a snapshot the caller holds open (a replica's: src/query/replica-reads.ts). */
export async function readRangeRowsIn(
  db: Queryable,
  project: string,
  range: { fromMs: number; toMs: number },
  atMost: number,
  sink: ModelRowSink,
): Promise<boolean> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM (SELECT 1 FROM tally.events
      WHERE project = $1 AND ts >= to_timestamp($2::float8 / 1000) AND ts < to_timestamp($3::float8 / 1000)
      LIMIT $4) AS x`,
    [project, range.fromMs, range.toMs, atMost + 1],
  );
  if (Number(rows[0].n) > atMost) return false;
  await readOn(db, project, range.fromMs, undefined, sink, undefined, Number.POSITIVE_INFINITY, range.toMs);
  return true;
}

/**
 * A full load's rows (every raw event from `cutoffMs` and every visit ending there) on `client`, a connection of the
 * caller's own (the load worker's: src/query/columnar/load-worker.ts), on one snapshot; returns
 * the data version that snapshot holds. On failure the client may be broken: end it.
 */
export async function readModelBase(
  client: pg.Client,
  project: string,
  cutoffMs: number,
  sink: ModelRowSink,
): Promise<number> {
  await client.query(BEGIN_SNAPSHOT);
  const read = await readOn(client, project, cutoffMs, undefined, sink, undefined, Number.POSITIVE_INFINITY);
  await client.query('COMMIT');
  return read.version;
}

/** Runs `read` in a read-only REPEATABLE READ transaction of its own: one snapshot. */
async function onSnapshot<T>(pool: pg.Pool, read: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(BEGIN_SNAPSHOT);
    const result = await read(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (err) {
    // A client whose ROLLBACK fails is broken: destroy it rather than return it to the pool.
    await client.query('ROLLBACK').then(
      () => client.release(),
      (rollbackErr: unknown) => client.release(rollbackErr instanceof Error ? rollbackErr : true),
    );
    throw err;
  }
}

async function readOn(
  client: Queryable,
  project: string,
  cutoffMs: number,
  since: number | undefined,
  sink: ModelRowSink,
  signal: AbortSignal | undefined,
  maxUsers: number,
  untilMs = Number.POSITIVE_INFINITY,
): Promise<ModelRows> {
  const { rows } = await client.query<{ version: string }>(
    'SELECT version FROM tally.data_versions WHERE project = $1',
    [project],
  );
  const version = rows.length === 0 ? 0 : Number(rows[0].version);
  let users: string[] | undefined;
  if (since !== undefined) {
    const changes = await readModelChanges(client, project, since, version);
    if (!changes.complete || changes.users.length === 0) return { version, ...changes, skipped: false };
    if (changes.users.length > maxUsers) return { version, ...changes, skipped: true };
    users = changes.users;
  }
  const byUser = users === undefined ? '' : 'AND user_id = ANY($4::text[])';
  const params = users === undefined ? [project, cutoffMs, untilMs] : [project, cutoffMs, untilMs, users];
  await stream(
    client,
    `SELECT ${EVENT_COLUMNS} FROM tally.events e
      WHERE project = $1 AND ts >= to_timestamp($2::float8 / 1000) AND ts < to_timestamp($3::float8 / 1000) ${byUser}`,
    params,
    (row) => sink.addEvent(row as unknown as EventRow),
    signal,
  );
  await stream(
    client,
    `SELECT ${VISIT_COLUMNS} FROM tally.sessions s
      WHERE project = $1 AND ended_at >= to_timestamp($2::float8 / 1000)
        AND started_at < to_timestamp($3::float8 / 1000) ${byUser}`,
    params,
    (row) => sink.addVisit(row as unknown as VisitRow),
    signal,
  );
  return { version, complete: true, users: users ?? [], skipped: false };
}

/**
 * Runs `sql` as a cursor inside the open transaction, handing each row to `each`; `signal`
 * stops it between two fetches (a load of millions of rows must not hold up a shutdown).
 */
async function stream(
  client: Queryable,
  sql: string,
  params: unknown[],
  each: (row: Record<string, unknown>) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  await client.query(`DECLARE model_rows NO SCROLL CURSOR FOR ${sql}`, params);
  for (;;) {
    const { rows } = await client.query<Record<string, unknown>>(`FETCH ${FETCH_ROWS} FROM model_rows`);
    for (const row of rows) each(row);
    if (rows.length < FETCH_ROWS) break;
    signal?.throwIfAborted();
  }
  await client.query('CLOSE model_rows');
}
