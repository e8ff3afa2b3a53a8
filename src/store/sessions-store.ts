import type pg from 'pg';
import { TallyError } from '../errors/tally-error.ts';
import { bumpDataVersions } from './data-versions.ts';

/** TALLY_SESSION_TIMEOUT_MIN's default: a gap longer than this many minutes starts a new visit. */
export const DEFAULT_SESSION_TIMEOUT_MIN = 30;

/**
 * The SQLSTATE tally.refresh_sessions raises when the visits of a project were built with another
 * session timeout than the one it is given (migration 011, tally.session_settings).
 */
export const SESSION_TIMEOUT_MISMATCH = 'TL001';

/**
 * `err` as TALLY_SESSION_TIMEOUT_MISMATCH when it is the refresh's timeout mismatch (its message
 * names the project and both timeouts), otherwise `err`. It reaches a batch when the stored
 * timeout changed after this process's start-up check (a rebuild with another timeout, or another
 * process with another timeout writing a project's first visits). Not retried in the process: its
 * TALLY_SESSION_TIMEOUT_MIN or the stored visits have to change. An HTTP client gets a 503 and
 * keeps its events for later; the Kafka processor keeps re-reading the batch from its stored
 * positions (docs/errors.md). Nothing of the batch is stored either way.
 */
export function sessionTimeoutError(err: unknown): unknown {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e?.code !== SESSION_TIMEOUT_MISMATCH) return err;
  return new TallyError(
    'TALLY_SESSION_TIMEOUT_MISMATCH',
    `TALLY_SESSION_TIMEOUT_MIN: ${String(e.message)}; nothing of the batch was stored`,
    { cause: err },
  );
}

/**
 * Start-up check of a process that writes visits (raw storage on): throws TALLY_CONFIG_INVALID,
 * one line, when a project's visits were built with another timeout than `timeoutMs`, rather
 * than failing at that project's first batch (the write-time check, migration 011).
 */
export async function checkSessionTimeout(
  pool: pg.Pool,
  setting: { storeRaw: boolean; timeoutMs: number },
): Promise<void> {
  if (!setting.storeRaw) return;
  const { rows } = await pool.query<{ project: string; timeout_ms: number; n: string }>(
    `SELECT project, timeout_ms, count(*) OVER () AS n FROM tally.session_settings
      WHERE timeout_ms <> $1 ORDER BY project COLLATE "C" LIMIT 1`,
    [setting.timeoutMs],
  );
  if (rows.length === 0) return;
  const { project, timeout_ms: stored, n } = rows[0];
  const others = Number(n) > 1 ? ` (and ${Number(n) - 1} more projects)` : '';
  const now = setting.timeoutMs / 60_000;
  throw new TallyError(
    'TALLY_CONFIG_INVALID',
    `TALLY_SESSION_TIMEOUT_MIN is ${now}, but the visits of project ${project}${others} were built with ${stored / 60_000}: run \`tally sessions rebuild\` with TALLY_SESSION_TIMEOUT_MIN=${now}, or set TALLY_SESSION_TIMEOUT_MIN=${stored / 60_000}`,
  );
}

/** The part of a freshly stored event that tally.refresh_sessions needs (migration 028). */
export interface SessionEvent {
  project: string;
  userId: string;
  /** Epoch ms, as given to tally.write_events. */
  ts: number;
  sessionId: string | null;
  eventId: string;
  type: string;
  path: string | null;
  isBot: boolean;
  hostname: string | null;
  referrerHost: string | null;
  channel: string | null;
  utmSource: string | null;
  utmMedium: string | null;
  utmCampaign: string | null;
  utmTerm: string | null;
  utmContent: string | null;
  browser: string | null;
  os: string | null;
  device: string | null;
  country: string | null;
}

/** SessionEvent's fields in tally.refresh_sessions' argument order, after its mask. */
const REFRESH_FIELDS = [
  'project',
  'userId',
  'ts',
  'sessionId',
  'eventId',
  'type',
  'path',
  'isBot',
  'hostname',
  'referrerHost',
  'channel',
  'utmSource',
  'utmMedium',
  'utmCampaign',
  'utmTerm',
  'utmContent',
  'browser',
  'os',
  'device',
  'country',
] as const satisfies readonly (keyof SessionEvent)[];

const REFRESH_TYPES = REFRESH_FIELDS.map((f) =>
  f === 'ts' ? 'float8[]' : f === 'isBot' ? 'bool[]' : 'text[]',
);

/**
 * The call of tally.refresh_sessions for `events` (all taken), as text and values; `rawCutoff`:
 * the raw retention's cutoff in epoch ms (undefined: none), before which a visit may have lost raw
 * rows and is recomputed from those still stored rather than merged (migration 028).
 */
export function refreshSessionsQuery(
  events: readonly SessionEvent[],
  timeoutMs: number,
  rawCutoff?: number,
): { text: string; values: unknown[] } {
  const args = REFRESH_TYPES.map((type, i) => `$${i + 1}::${type}`).join(', ');
  const n = REFRESH_TYPES.length;
  return {
    text: `SELECT tally.refresh_sessions(NULL, ${args}, $${n + 1}::float8, $${n + 2}::float8)`,
    values: [...REFRESH_FIELDS.map((f) => events.map((e) => e[f])), timeoutMs, rawCutoff ?? null],
  };
}

/**
 * Merges `events`, just inserted into tally.events in the transaction open on `client`, into the
 * visits (tally.sessions) they touch (migrations 011 and 028). tally.write_events does the same
 * for the events it stores; this is for callers that store raw rows themselves.
 */
export async function refreshSessions(
  client: pg.ClientBase,
  events: readonly SessionEvent[],
  timeoutMs: number,
  rawCutoff?: number,
): Promise<void> {
  const { text, values } = refreshSessionsQuery(events, timeoutMs, rawCutoff);
  await client.query(text, values);
}

/**
 * The projects a rebuild of every project goes through: those with raw rows (migration 013's
 * tally.raw_projects), those that ever stored events, and those with a stored session timeout
 * (so that a rebuild with a new timeout leaves none with the old one).
 */
export async function projectsWithEvents(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ project: string }>(
    `SELECT u.project FROM (
       SELECT project FROM tally.data_versions
       UNION SELECT project FROM tally.session_settings
       UNION SELECT project FROM tally.raw_projects() AS r(project)
     ) AS u
     ORDER BY u.project COLLATE "C"`,
  );
  return rows.map((r) => r.project);
}

/**
 * Deletes and recomputes the visits of `project` from its raw rows, in one transaction, and
 * bumps its data version so no cached answer computed from the old visits is served again.
 * Returns the number of visits stored, and stores `timeoutMs` as the project's session timeout
 * (tally.session_settings). Visits that ended before the oldest raw row stay (migration 011).
 * Batches of this project wait for it before they lock anything; those of other projects go on.
 */
export async function rebuildSessions(pool: pg.Pool, project: string, timeoutMs: number): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // One statement reads and writes the whole project: the pool's statement_timeout (pool.ts)
    // would stop a large one, so none for this transaction.
    await client.query('SET LOCAL statement_timeout = 0');
    // The project's write lock first (EXCLUSIVE, as tally.delete_user takes it): batches take the
    // visits lock before the version row (migration 024) and this the version row before the
    // visits lock, so none of the project's batches may be in flight. Then the version row, then
    // the project's visits lock (in tally.rebuild_sessions).
    await client.query('SELECT pg_advisory_xact_lock(741121, hashtext($1))', [project]);
    await bumpDataVersions(client, [project]);
    const { rows } = await client.query<{ n: string }>('SELECT tally.rebuild_sessions($1, $2) AS n', [
      project,
      timeoutMs,
    ]);
    await client.query('COMMIT');
    return Number(rows[0].n);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
