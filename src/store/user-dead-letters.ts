import type pg from 'pg';

/**
 * The dead letters of one user (issue 22): tally.dead_letters keeps each unreadable or invalid
 * Kafka message as its bytes, with no user column, so a user's are found by reading the payloads.
 *
 * A dead letter is the user's when it belongs to the project (its `tally-project` header; one
 * without the header is of the project `default`, as the processor would have stored it:
 * kafka/codec.ts) and its payload is a JSON object whose `user_id` (the only name any accepted
 * event shape gives the user id: event/normalize.ts, compat/event-shapes.ts) is the id, as a
 * string or as a number written the same way (an earlier producer's numeric id; such an event is
 * refused, but the payload still names the user). A payload that is not JSON, not UTF-8, or
 * carries the id anywhere else (in `properties`, in a broken line) is not matched: no user id can
 * be read from it, and matching text anywhere would hand one user's export another's payloads.
 * SECURITY.md says so.
 */

/** Payloads read per round trip: dead letters are at most TALLY_KAFKA_MAX_MESSAGE_BYTES each. */
const PAGE_ROWS = 200;

/** One candidate row, the payload as stored. */
interface CandidateRow {
  id: string;
  payload: Buffer;
}

/** The payload text, or undefined when it is not valid UTF-8 (such a payload is no JSON). */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Whether the payload is a JSON object naming `userId` under `user_id` (see above). */
export function isDeadLetterOf(payload: Buffer, userId: string): boolean {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(payload));
  } catch {
    return false;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const id = (value as Record<string, unknown>).user_id;
  if (typeof id === 'string') return id === userId;
  return typeof id === 'number' && Number.isFinite(id) && String(id) === userId;
}

/**
 * The rows that may be the user's, in id order, a page at a time: the project's dead letters whose
 * payload holds the id's UTF-8 bytes, or a backslash. TRICKY: the pre-filter must never miss one.
 * A JSON string without escapes is its characters' UTF-8 bytes, so an unescaped id is found as
 * bytes; one written with escapes (`\u00e9`, `\/`) has a backslash, and those payloads are all
 * read. `position` on bytea: no decoding in SQL, so a payload that is not UTF-8 cannot fail the
 * statement (and no LIKE pattern to escape).
 */
async function* candidates(
  client: pg.ClientBase,
  project: string,
  userId: string,
): AsyncGenerator<CandidateRow[]> {
  const needle = Buffer.from(userId, 'utf8');
  let after = '0';
  for (;;) {
    const { rows } = await client.query<CandidateRow>(
      // TRICKY: ORDER BY the column, not the output `id` (text), or the pages skip rows.
      `SELECT id::text AS id, payload FROM tally.dead_letters
        WHERE (project = $1 OR (project IS NULL AND $1 = 'default'))
          AND payload IS NOT NULL
          AND (position($2::bytea IN payload) > 0 OR position('\\x5c'::bytea IN payload) > 0)
          AND id > $3::int8
        ORDER BY dead_letters.id LIMIT ${PAGE_ROWS}`,
      [project, needle, after],
    );
    if (rows.length > 0) yield rows;
    if (rows.length < PAGE_ROWS) return;
    after = rows[rows.length - 1].id;
  }
}

/** The ids of the user's dead letters, in id order, a page at a time. */
async function* userDeadLetterIds(
  client: pg.ClientBase,
  project: string,
  userId: string,
): AsyncGenerator<string[]> {
  for await (const rows of candidates(client, project, userId)) {
    const ids = rows.filter((r) => isDeadLetterOf(r.payload, userId)).map((r) => r.id);
    if (ids.length > 0) yield ids;
  }
}

/**
 * Deletes the user's dead letters; how many. Inside the deletion's transaction (user-deletion.ts),
 * after tally.delete_user: see the lock order there.
 */
export async function deleteUserDeadLetters(
  client: pg.ClientBase,
  project: string,
  userId: string,
): Promise<number> {
  const ids: string[] = [];
  for await (const page of userDeadLetterIds(client, project, userId)) ids.push(...page);
  if (ids.length === 0) return 0;
  const result = await client.query('DELETE FROM tally.dead_letters WHERE id = ANY ($1::int8[])', [ids]);
  return result.rowCount ?? 0;
}

/** How many dead letters the user has (the export's header, on its snapshot). */
export async function countUserDeadLetters(
  client: pg.ClientBase,
  project: string,
  userId: string,
): Promise<number> {
  let n = 0;
  for await (const page of userDeadLetterIds(client, project, userId)) n += page.length;
  return n;
}

/**
 * The user's dead letters as JSON texts, a page at a time: every column, the payload as its text
 * (a matched payload is UTF-8 JSON). On the caller's snapshot, so they agree with its count.
 */
export async function* userDeadLetterRows(
  client: pg.ClientBase,
  project: string,
  userId: string,
): AsyncGenerator<string[]> {
  for await (const ids of userDeadLetterIds(client, project, userId)) {
    const { rows } = await client.query<{ data: string }>(
      `SELECT json_build_object('id', id, 'project', project, 'reason', reason, 'detail', detail,
                                'payload', convert_from(payload, 'UTF8'), 'source', source, 'topic', topic,
                                'partition', partition, 'offset', "offset", 'received_at', received_at,
                                'replayed_at', replayed_at)::text AS data
         FROM tally.dead_letters WHERE id = ANY ($1::int8[]) ORDER BY id`,
      [ids],
    );
    yield rows.map((r) => r.data);
  }
}
