import type { Queryable } from './read-snapshot.ts';

export interface StoredEvent {
  event_id: string;
  type: string;
  user_id: string;
  timestamp: string;
  received_at: string;
  page_url: string | null;
  referrer: string | null;
  session_id: string | null;
  service: string | null;
  properties: Record<string, unknown> | null;
}

/** Reads of the raw event table (needs TALLY_STORE_RAW, within the retention window). */
export class EventsStore {
  readonly #pool: Queryable;

  constructor(pool: Queryable) {
    this.#pool = pool;
  }

  /** A user's events, newest first. */
  async userEvents(project: string, userId: string, limit: number): Promise<StoredEvent[]> {
    const { rows } = await this.#pool.query<StoredEvent>(
      `SELECT event_id, type, user_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS timestamp,
              to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS received_at,
              page_url, referrer, session_id, service, properties
         FROM tally.events WHERE project = $1 AND user_id = $2
        ORDER BY ts DESC, id DESC LIMIT $3`,
      [project, userId, limit],
    );
    return rows;
  }

  /** Seed 003's question: how many events has this user had on this page. */
  async userPageCount(project: string, userId: string, pageUrl: string): Promise<number> {
    const { rows } = await this.#pool.query<{ n: number }>(
      `SELECT count(*)::int8 AS n FROM tally.events WHERE project = $1 AND user_id = $2 AND page_url = $3`,
      [project, userId, pageUrl],
    );
    return rows[0]?.n ?? 0;
  }
}
