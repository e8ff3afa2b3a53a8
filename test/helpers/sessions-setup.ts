import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { RawPartitions } from '../../src/store/partitions.ts';
import { refreshSessions } from '../../src/store/sessions-store.ts';
import { startTestPostgres, type TestPostgres } from './kafka-process.ts';
import {
  DIMENSIONS,
  insertRaw,
  sessionize,
  storedEvents,
  storedVisits,
  type Dimension,
  type SessionizerEvent,
  type Visit,
} from './sessionizer.ts';

/**
 * What the suites of tally.refresh_sessions (test/store/sessions-*.integration.test.ts) share:
 * a database with yesterday's and today's partitions, events written the way a batch writes
 * them, and the check that the stored visits equal the reference sessionizer's.
 */

export const DAY = 86_400_000;
export const MINUTE = 60_000;
/** Yesterday 01:00 UTC: events up to a day later fall on yesterday or today. */
export const BASE = Math.floor(Date.now() / DAY) * DAY - DAY + 60 * MINUTE;

// Events stored before migration 010 have no dimensions.
const NO_DIMENSIONS = Object.fromEntries(DIMENSIONS.map((d) => [d, null])) as Record<Dimension, null>;

/** A page view with no dimensions (`sessionId` and `path` null unless given). */
export function pageView(
  project: string,
  userId: string,
  eventId: string,
  ts: number,
  more: { sessionId?: string | null; path?: string | null } = {},
): SessionizerEvent {
  return {
    ...NO_DIMENSIONS,
    project,
    userId,
    eventId,
    ts,
    type: 'page_view',
    sessionId: more.sessionId ?? null,
    path: more.path ?? null,
    isBot: false,
  };
}

/**
 * A test database with the partitions of BASE's day and the next, and `conns`, a pool of four
 * for transactions held open side by side (ended after the test).
 */
export async function startSessionsDb(t: TestContext): Promise<{ db: TestPostgres; conns: pg.Pool }> {
  const db = await startTestPostgres(t);
  const day0 = BASE - (BASE % DAY);
  await new RawPartitions(db.pool, undefined).ensure([day0, day0 + DAY]);
  const conns = new pg.Pool({ connectionString: db.connectionString, max: 4 });
  conns.on('error', () => undefined);
  t.after(() => conns.end());
  return { db, conns };
}

/** One batch the way a writer stores it: raw rows, then the refresh (`rawCutoff`: the writer's), one transaction. */
export async function writeBatch(
  client: pg.ClientBase,
  events: readonly SessionizerEvent[],
  timeoutMs: number,
  rawCutoff?: number,
): Promise<void> {
  await client.query('BEGIN');
  try {
    await refreshSessions(client, await insertRaw(client, events), timeoutMs, rawCutoff);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/** Asserts the stored visits of `project` are the reference sessionizer's over its stored events. */
export async function assertVisitsExact(db: pg.Pool, project: string, timeoutMs: number): Promise<Visit[]> {
  const expected = sessionize(await storedEvents(db, project), timeoutMs);
  assert.ok(expected.length > 0, `${project} has visits`);
  assert.deepEqual(await storedVisits(db, project), expected);
  return expected;
}
