import type pg from 'pg';
import { recordAudit } from './user-audit.ts';
import { countUserDeadLetters, userDeadLetterRows } from './user-dead-letters.ts';
import { userHash } from './user-hash.ts';

export interface UserExportRequest {
  project: string;
  userId: string;
  /** Who asks, recorded in the audit: `key:<id>` or `cli:<os user>`. */
  actor: string;
  /** The deployment's user hash key (src/store/user-hash.ts): tombstones and audit rows are by hash. */
  key: Buffer;
}

/** Rows per FETCH: a few hundred KB of JSON at a time, however many events the user has. */
const FETCH_ROWS = 1000;

/**
 * What is stored about the user, one NDJSON line (`{"kind", "data"}`) per row, each kind from its
 * own cursor. `row_to_json` of the whole row, so a column added later is exported without a
 * change here. The dead letters have no user column: theirs are read in TypeScript
 * (user-dead-letters.ts), between the user number and the tombstone. Not here: the rollups
 * (counts, with no row of their own per user).
 */
interface Section {
  kind: string;
  /** `$1` is the project; `$2` the user id (`by: 'id'`) or its keyed hash (`by: 'hash'`). */
  by: 'id' | 'hash';
  sql: string;
}

const SECTIONS: readonly Section[] = [
  {
    kind: 'event',
    by: 'id',
    // The index events_user (project, user_id, ts DESC), read in order.
    sql: 'SELECT row_to_json(e)::text AS data FROM tally.events e WHERE project = $1 AND user_id = $2 ORDER BY ts',
  },
  {
    kind: 'visit',
    by: 'id',
    sql: 'SELECT row_to_json(s)::text AS data FROM tally.sessions s WHERE project = $1 AND user_id = $2 ORDER BY started_at',
  },
  {
    kind: 'user_number',
    by: 'id',
    sql: 'SELECT row_to_json(n)::text AS data FROM tally.user_numbers n WHERE project = $1 AND user_id = $2',
  },
  {
    kind: 'tombstone',
    by: 'hash',
    sql: `SELECT json_build_object('deleted_at', deleted_at, 'dropped_events', dropped_events,
                                   'last_dropped_at', last_dropped_at)::text AS data
            FROM tally.user_tombstones WHERE project = $1 AND user_hash = $2`,
  },
  {
    kind: 'audit',
    by: 'hash',
    sql: `SELECT json_build_object('id', id, 'at', at, 'action', action, 'actor', actor, 'outcome', outcome,
                                   'events', events, 'detail', detail)::text AS data
            FROM tally.user_audit WHERE project = $1 AND user_hash = $2 ORDER BY at, id`,
  },
];

interface Counts {
  version: number;
  events: number;
  visits: number;
  dead_letters: number;
  deleted: boolean;
}

/**
 * Everything stored about one user of one project, as NDJSON text (whole lines, a fetch's worth
 * per string): first a header line `{"kind":"export", project, user_id, version, events, visits,
 * dead_letters, deleted}`, then the user's raw events, visits, user number, dead letters,
 * tombstone and audit records, and last `{"kind":"end"}`.
 *
 * All of it is read on ONE read-only REPEATABLE READ snapshot, with cursors, so the lines agree
 * with each other and with the header's counts, and memory stays bounded by one fetch however
 * many events the user has; the consumer's pace sets the reading (an unread string stops it).
 * The export's audit row (action 'export', the header's event count) is committed before the
 * header is yielded: nothing leaves unrecorded. Stopping the iteration early (a client gone)
 * ends the snapshot and returns its connection.
 */
export async function* exportUser(pool: pg.Pool, req: UserExportRequest): AsyncGenerator<string> {
  const hash = userHash(req.key, req.userId);
  const client = await pool.connect();
  let done = false;
  try {
    // UTC: timestamps read the same whatever the server's zone. TRICKY: between two fetches the
    // session idles in its transaction for as long as the reader takes, which `tally start` with
    // Kafka caps at 10 s (embedded-tally.ts); a stalled HTTP client is cut off by the
    // connection timeout long before these 5 minutes.
    await client.query(
      `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL TimeZone = 'UTC';
       SET LOCAL idle_in_transaction_session_timeout = '5min'`,
    );
    const counts = await countOn(client, req.project, req.userId, hash);
    // On the pool, not the snapshot (read only): committed before a single line goes out.
    await recordAudit(pool, {
      project: req.project,
      action: 'export',
      userHash: hash,
      actor: req.actor,
      outcome: 'ok',
      events: counts.events,
      detail: { visits: counts.visits, dead_letters: counts.dead_letters, version: counts.version },
    });
    yield `${JSON.stringify({ kind: 'export', project: req.project, user_id: req.userId, ...counts })}\n`;
    for (const section of SECTIONS) {
      if (section.kind === 'tombstone') {
        for await (const page of userDeadLetterRows(client, req.project, req.userId)) {
          yield page.map((data) => `{"kind":"dead_letter","data":${data}}\n`).join('');
        }
      }
      yield* streamSection(client, section, [req.project, section.by === 'id' ? req.userId : hash]);
    }
    await client.query('COMMIT');
    done = true;
    // The last line: a reader tells a complete export from one cut short.
    yield '{"kind":"end"}\n';
  } finally {
    if (done) client.release();
    else await rollback(client);
  }
}

/** The header's figures, on the export's snapshot (so they match the lines that follow). */
async function countOn(
  client: pg.PoolClient,
  project: string,
  userId: string,
  hash: Buffer,
): Promise<Counts> {
  const { rows } = await client.query<{ version: string; events: string; visits: string; deleted: boolean }>(
    `SELECT coalesce((SELECT version FROM tally.data_versions WHERE project = $1), 0) AS version,
            (SELECT count(*) FROM tally.events WHERE project = $1 AND user_id = $2) AS events,
            (SELECT count(*) FROM tally.sessions WHERE project = $1 AND user_id = $2) AS visits,
            EXISTS (SELECT 1 FROM tally.user_tombstones WHERE project = $1 AND user_hash = $3) AS deleted`,
    [project, userId, hash],
  );
  const r = rows[0];
  return {
    version: Number(r.version),
    events: Number(r.events),
    visits: Number(r.visits),
    dead_letters: await countUserDeadLetters(client, project, userId),
    deleted: r.deleted,
  };
}

/** One section's rows through a cursor, as lines; a string per fetch. */
async function* streamSection(
  client: pg.PoolClient,
  section: Section,
  params: readonly [string, string | Buffer],
): AsyncGenerator<string> {
  await client.query(`DECLARE user_export NO SCROLL CURSOR FOR ${section.sql}`, [...params]);
  const prefix = `{"kind":${JSON.stringify(section.kind)},"data":`;
  for (;;) {
    const { rows } = await client.query<{ data: string }>(`FETCH ${FETCH_ROWS} FROM user_export`);
    if (rows.length > 0) yield rows.map((r) => `${prefix}${r.data}}\n`).join('');
    if (rows.length < FETCH_ROWS) break;
  }
  await client.query('CLOSE user_export');
}

async function rollback(client: pg.PoolClient): Promise<void> {
  // A client whose ROLLBACK fails is broken: destroy it rather than return it to the pool.
  await client.query('ROLLBACK').then(
    () => client.release(),
    (err: unknown) => client.release(err instanceof Error ? err : true),
  );
}
