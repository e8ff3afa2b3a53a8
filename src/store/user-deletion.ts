import type pg from 'pg';
import { TallyError } from '../errors/tally-error.ts';
import { DAY, HOUR, LEVELS } from './levels.ts';
import { classifyPgError } from './pg-errors.ts';
import { recordAudit } from './user-audit.ts';
import { deleteUserDeadLetters } from './user-dead-letters.ts';
import { userHash } from './user-hash.ts';

/** What a deletion removed (issue 22). */
export interface UserDeletion {
  project: string;
  user_id: string;
  /** Raw events removed (bots too). */
  events: number;
  /** Visits removed (tally.sessions). */
  visits: number;
  /** Dead letters removed: the project's tally.dead_letters whose payload names the user (user-dead-letters.ts). */
  dead_letters: number;
  /** The project's data version the deletion moved to; null when nothing was stored of the user. */
  version: number | null;
  /**
   * Days (YYYY-MM-DD, UTC) whose event and page counts still include the user's events: only with
   * `allowInexact`, and only when some were counted without raw rows (see deleteUser).
   */
  inexact_days: string[];
}

export interface UserDeletionRequest {
  project: string;
  userId: string;
  /** Who asked: `key:<id>` for an API key, `cli:<os user>` for the command line (the audit's actor). */
  actor: string;
  /** TALLY_USER_HASH_KEY (user-hash.ts): the tombstone and the audit keep the user by this hash. */
  key: Buffer;
  /** Delete even when some of the user's counted events can no longer be subtracted (see deleteUser). */
  allowInexact?: boolean;
}

/** SQLSTATE of tally.delete_user when the counts cannot be corrected exactly (migration 022). */
export const DELETE_INEXACT = 'TL002';

/**
 * Deletes one user of one project, as if its events had never been sent: its raw events, dedup
 * keys, user number, visits, and its share of every rollup, in one transaction with a tombstone
 * (so the batches drop its later events) and an audit row; the project's data version moves once,
 * with one change-feed row naming the user, so caches and read models drop it. Deleting a user
 * again, or one never seen, removes nothing and returns zeros (the tombstone is written anyway).
 * On any failure nothing is changed, a 'failed' audit row is recorded in a transaction of its own,
 * and the error is rethrown.
 *
 * The exactness limit, and the choice made: the event and page counters can only be corrected
 * from the user's raw rows, and the rollups outlive them (TALLY_RAW_RETENTION_DAYS drops old raw
 * rows; TALLY_STORE_RAW=false keeps none). Where the user's hour or day bit is set but no counted
 * raw row of the user is left, some counts cannot be subtracted. Rather than report a deletion as
 * done while numbers still hold the user, it refuses: TALLY_DELETE_INEXACT (409), naming the days,
 * nothing changed. With `allowInexact` it removes everything it can (the raw rows, the visits, and
 * the unique-user sets exactly), and returns those days in `inexact_days`, also in the audit.
 *
 * Ingest of the project waits for the deletion (the project lock of migration 022): batches of it
 * that wait past lock_timeout (20 s) fail as retriable and are retried; other projects go on.
 */
export async function deleteUser(pool: pg.Pool, req: UserDeletionRequest): Promise<UserDeletion> {
  const hash = userHash(req.key, req.userId);
  const client = await connect(pool);
  let failure: TallyError;
  let broken = false;
  try {
    await client.query('BEGIN');
    // One statement reads and corrects every rollup of the user: a heavy user may take longer than
    // the pool's statement_timeout (pool.ts), meant for questions and batches.
    await client.query("SET LOCAL statement_timeout = '10min'");
    const deletion = await runDeletion(client, req, hash);
    // TRICKY: after tally.delete_user, though `tally projects move` locks dead_letters before the
    // tables delete_user writes (project-move.ts LOCK_ORDER). No cycle: the move's one LOCK TABLE
    // waits at user_numbers, delete_user's first table, before it reaches dead_letters; and the
    // batches only insert dead letters, never waiting on rows a deletion holds.
    deletion.dead_letters = await deleteUserDeadLetters(client, req.project, req.userId);
    await recordAudit(client, {
      project: req.project,
      action: 'delete',
      userHash: hash,
      actor: req.actor,
      outcome: 'ok',
      events: deletion.events,
      detail: {
        visits: deletion.visits,
        dead_letters: deletion.dead_letters,
        version: deletion.version,
        inexact_days: deletion.inexact_days,
      },
    });
    await client.query('COMMIT');
    return deletion;
  } catch (err) {
    failure = deletionError(err);
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
  } finally {
    client.release(broken);
  }
  // After the release: the failure's audit row takes a connection of its own.
  await recordFailure(pool, req, hash, failure);
  throw failure;
}

async function connect(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (err) {
    throw classifyPgError(err);
  }
}

async function runDeletion(
  client: pg.PoolClient,
  req: UserDeletionRequest,
  hash: Buffer,
): Promise<UserDeletion> {
  const { rows } = await client.query<{
    removed_events: string;
    removed_visits: string;
    new_version: string | null;
    inexact_days: Date[];
  }>(
    `SELECT removed_events, removed_visits, new_version, inexact_days
       FROM tally.delete_user($1, $2, $3, $4::int2[], $5::float8[], $6::int2, $7::int2, $8)`,
    [
      req.project,
      req.userId,
      hash,
      LEVELS.map((l) => l.level),
      LEVELS.map((l) => l.ms),
      HOUR.level,
      DAY.level,
      req.allowInexact ?? false,
    ],
  );
  const r = rows[0];
  return {
    project: req.project,
    user_id: req.userId,
    events: Number(r.removed_events),
    visits: Number(r.removed_visits),
    dead_letters: 0,
    version: r.new_version === null ? null : Number(r.new_version),
    inexact_days: r.inexact_days.map((d) => d.toISOString().slice(0, 10)),
  };
}

/** A refused inexact deletion as TALLY_DELETE_INEXACT (the days from the SQL error's detail); else classified. */
function deletionError(err: unknown): TallyError {
  const e = err as { code?: unknown; message?: unknown; detail?: unknown } | null;
  if (e?.code !== DELETE_INEXACT) return classifyPgError(err);
  return new TallyError(
    'TALLY_DELETE_INEXACT',
    `${String(e.message)}: ${String(e.detail)}; nothing was deleted. Deleting anyway (allow_inexact) removes everything else and leaves those days over-counted`,
    { cause: err },
  );
}

/**
 * The 'failed' audit row, in a transaction of its own (the deletion's rolled back). A failure to
 * record it must not hide the deletion's own error, which is what the caller needs: it is dropped.
 */
async function recordFailure(
  pool: pg.Pool,
  req: UserDeletionRequest,
  hash: Buffer,
  failure: TallyError,
): Promise<void> {
  await recordAudit(pool, {
    project: req.project,
    action: 'delete',
    userHash: hash,
    actor: req.actor,
    outcome: 'failed',
    events: 0,
    detail: { code: failure.code, message: failure.message },
  }).catch(() => undefined);
}
