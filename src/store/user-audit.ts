import type pg from 'pg';

/** One row of tally.user_audit (migration 020): a deletion or export of one user. */
export interface AuditRecord {
  id: number;
  at: string;
  project: string;
  action: 'delete' | 'export';
  /** The user's keyed hash (src/store/user-hash.ts), hex: the audit keeps no user id. */
  user_hash: string;
  actor: string;
  outcome: 'ok' | 'failed';
  events: number;
  detail: unknown;
}

export interface AuditEntry {
  project: string;
  action: 'delete' | 'export';
  userHash: Buffer;
  /** Who asked: `key:<id>` for an API key, `cli:<os user>` for the command line. */
  actor: string;
  outcome: 'ok' | 'failed';
  events: number;
  detail?: unknown;
}

/** Records a deletion or export; inside the caller's transaction when `db` is its client. */
export async function recordAudit(db: Pick<pg.ClientBase, 'query'>, e: AuditEntry): Promise<void> {
  await db.query(
    `INSERT INTO tally.user_audit (project, action, user_hash, actor, outcome, events, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [
      e.project,
      e.action,
      e.userHash,
      e.actor,
      e.outcome,
      e.events,
      e.detail === undefined ? null : JSON.stringify(e.detail),
    ],
  );
}

/** The audit of a project, newest first; of one user (by hash) and from a time when given. */
export async function listAudit(
  db: Pick<pg.ClientBase, 'query'>,
  f: { project: string; userHash?: Buffer; since?: Date; limit: number },
): Promise<AuditRecord[]> {
  const { rows } = await db.query<AuditRecord>(
    `SELECT id::float8 AS id, to_json(at)#>>'{}' AS at, project, action, encode(user_hash, 'hex') AS user_hash,
            actor, outcome, events::float8 AS events, detail
       FROM tally.user_audit
      WHERE project = $1 AND ($2::bytea IS NULL OR user_hash = $2) AND ($3::timestamptz IS NULL OR at >= $3)
      ORDER BY at DESC, id DESC
      LIMIT $4`,
    [f.project, f.userHash ?? null, f.since ?? null, f.limit],
  );
  return rows;
}
