/**
 * A from-scratch reference sessionizer: the visits (every column of tally.sessions) that the
 * stored events of issue 20 make, computed the plainest way, independently of src/. The oracle
 * for tally.refresh_sessions and the query suites.
 *
 * The rule (CONTRACT-20.md): a user's events without a session_id are ordered by (ts, eventId)
 * and cut wherever the next one comes more than `timeoutMs` later; the events of one explicit
 * session_id are one visit whatever their gaps. Ties on ts are broken by eventId in the order
 * of PostgreSQL's COLLATE "C" on UTF-8, which is code point order (it differs from JavaScript's
 * `<`, UTF-16 code units, for characters above U+FFFF against U+E000..U+FFFF).
 */

export const DIMENSIONS = [
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
] as const;
export type Dimension = (typeof DIMENSIONS)[number];

/** One stored event (a row of tally.events), as the sessionizer needs it. */
export type SessionizerEvent = {
  project: string;
  userId: string;
  /** Epoch ms. */
  ts: number;
  type: string;
  eventId: string;
  /** NULL (or '') for events cut by the timeout. */
  sessionId: string | null;
  path: string | null;
  isBot: boolean;
} & Record<Dimension, string | null>;

/** One visit: every column of tally.sessions (times in epoch ms). */
export type Visit = {
  project: string;
  userId: string;
  sessionKey: string;
  startedAt: number;
  endedAt: number;
  events: number;
  pageViews: number;
  entryPage: string | null;
  exitPage: string | null;
  isBot: boolean;
  /** The first event's id, and the first and last page views' instants and ids (migration 028). */
  firstEventId: string;
  entryAt: number | null;
  entryEventId: string | null;
  exitAt: number | null;
  exitEventId: string | null;
} & Record<Dimension, string | null>;

/** PostgreSQL's COLLATE "C" order on a UTF-8 database: UTF-8 bytes, i.e. code points. */
export function compareC(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function byTimeThenId(a: SessionizerEvent, b: SessionizerEvent): number {
  return a.ts - b.ts || compareC(a.eventId, b.eventId);
}

function visitOf(events: readonly SessionizerEvent[], sessionKey: string): Visit {
  const first = events[0];
  const pageViews = events.filter((e) => e.type === 'page_view');
  const visit = {
    project: first.project,
    userId: first.userId,
    sessionKey,
    startedAt: first.ts,
    endedAt: events[events.length - 1].ts,
    events: events.length,
    pageViews: pageViews.length,
    entryPage: pageViews.length > 0 ? pageViews[0].path : null,
    exitPage: pageViews.length > 0 ? pageViews[pageViews.length - 1].path : null,
    isBot: events.some((e) => e.isBot),
    firstEventId: first.eventId,
    entryAt: pageViews.length > 0 ? pageViews[0].ts : null,
    entryEventId: pageViews.length > 0 ? pageViews[0].eventId : null,
    exitAt: pageViews.length > 0 ? pageViews[pageViews.length - 1].ts : null,
    exitEventId: pageViews.length > 0 ? pageViews[pageViews.length - 1].eventId : null,
  } as Visit;
  for (const d of DIMENSIONS) visit[d] = first[d];
  return visit;
}

/** The visits of `events` (any order), sorted by (project, userId, sessionKey, startedAt). */
export function sessionize(events: readonly SessionizerEvent[], timeoutMs: number): Visit[] {
  const groups = new Map<string, SessionizerEvent[]>();
  for (const e of events) {
    const key = JSON.stringify([e.project, e.userId, e.sessionId || '']);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [e]);
    else group.push(e);
  }
  const visits: Visit[] = [];
  for (const group of groups.values()) {
    group.sort(byTimeThenId);
    const sessionKey = group[0].sessionId || '';
    if (sessionKey !== '') {
      visits.push(visitOf(group, sessionKey));
      continue;
    }
    let start = 0;
    for (let i = 1; i <= group.length; i++) {
      if (i === group.length || group[i].ts - group[i - 1].ts > timeoutMs) {
        visits.push(visitOf(group.slice(start, i), ''));
        start = i;
      }
    }
  }
  return visits.sort(compareVisits);
}

/** The order of tally.sessions' primary key (code points for the text columns). */
export function compareVisits(a: Visit, b: Visit): number {
  return (
    compareC(a.project, b.project) ||
    compareC(a.userId, b.userId) ||
    compareC(a.sessionKey, b.sessionKey) ||
    a.startedAt - b.startedAt
  );
}

/** The columns of tally.events the sessionizer reads, in SessionizerEvent's field order. */
const EVENT_COLUMNS: [keyof SessionizerEvent, string][] = [
  ['project', 'project'],
  ['userId', 'user_id'],
  ['type', 'type'],
  ['eventId', 'event_id'],
  ['sessionId', 'session_id'],
  ['path', 'path'],
  ['hostname', 'hostname'],
  ['referrerHost', 'referrer_host'],
  ['channel', 'channel'],
  ['utmSource', 'utm_source'],
  ['utmMedium', 'utm_medium'],
  ['utmCampaign', 'utm_campaign'],
  ['utmTerm', 'utm_term'],
  ['utmContent', 'utm_content'],
  ['browser', 'browser'],
  ['os', 'os'],
  ['device', 'device'],
  ['country', 'country'],
  ['isBot', 'is_bot'],
];

const VISIT_COLUMNS: [keyof Visit, string][] = [
  ['project', 'project'],
  ['userId', 'user_id'],
  ['sessionKey', 'session_key'],
  ['events', 'events'],
  ['pageViews', 'page_views'],
  ['entryPage', 'entry_page'],
  ['exitPage', 'exit_page'],
  ...DIMENSIONS.map((d): [Dimension, string] => [d, d.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)]),
  ['isBot', 'is_bot'],
  ['firstEventId', 'first_event_id'],
  ['entryEventId', 'entry_event_id'],
  ['exitEventId', 'exit_event_id'],
];

/** Exact epoch ms of a timestamptz column (a JS Date would drop the microseconds). */
const epochMs = (column: string) => `(extract(epoch FROM ${column}) * 1000)::float8`;

interface Queryable {
  query<R extends object>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** The raw rows of `project` (tally.events), as the sessionizer reads them. */
export async function storedEvents(db: Queryable, project: string): Promise<SessionizerEvent[]> {
  const { rows } = await db.query<SessionizerEvent>(
    `SELECT ${EVENT_COLUMNS.map(([k, c]) => `${c} AS "${k}"`).join(', ')}, ${epochMs('ts')} AS "ts"
       FROM tally.events WHERE project = $1`,
    [project],
  );
  return rows;
}

/** The stored visits of `project` (tally.sessions), in primary-key order. */
export async function storedVisits(db: Queryable, project: string): Promise<Visit[]> {
  const { rows } = await db.query<Visit>(
    `SELECT ${VISIT_COLUMNS.map(([k, c]) => `${c} AS "${k}"`).join(', ')},
            ${epochMs('started_at')} AS "startedAt", ${epochMs('ended_at')} AS "endedAt",
            ${epochMs('entry_at')} AS "entryAt", ${epochMs('exit_at')} AS "exitAt"
       FROM tally.sessions WHERE project = $1`,
    [project],
  );
  return rows.sort(compareVisits);
}

/**
 * Stores `events` raw the way tally.write_events does (a dedup key first; only the events whose
 * key is new get a raw row) and returns the fresh ones, in the order given. Times are epoch ms.
 */
export async function insertRaw(
  db: Queryable,
  events: readonly SessionizerEvent[],
): Promise<SessionizerEvent[]> {
  const seen = new Set<string>();
  const unique = events.filter((e) => {
    const key = JSON.stringify([e.project, e.eventId]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const cols = EVENT_COLUMNS.map(([, c]) => c);
  const types = EVENT_COLUMNS.map(([k]) => (k === 'isBot' ? 'bool[]' : 'text[]'));
  const { rows } = await db.query<{ project: string; event_id: string }>(
    `WITH x AS (
       SELECT * FROM unnest(${cols.map((_, i) => `$${i + 1}::${types[i]}`).join(', ')}, $${cols.length + 1}::float8[])
         AS x(${cols.join(', ')}, ts_ms)
     ),
     k AS (
       INSERT INTO tally.event_ids (project, event_id) SELECT project, event_id FROM x
       ON CONFLICT DO NOTHING RETURNING project, event_id
     )
     INSERT INTO tally.events (${cols.join(', ')}, ts, received_at)
     SELECT ${cols.map((c) => `x.${c}`).join(', ')}, to_timestamp(x.ts_ms / 1000.0), now()
       FROM x JOIN k USING (project, event_id)
     RETURNING project, event_id`,
    [...EVENT_COLUMNS.map(([k]) => unique.map((e) => e[k])), unique.map((e) => e.ts)],
  );
  const fresh = new Set(rows.map((r) => JSON.stringify([r.project, r.event_id])));
  return unique.filter((e) => fresh.has(JSON.stringify([e.project, e.eventId])));
}
