import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { RawPartitions } from '../../src/store/partitions.ts';
import { rebuildSessions, refreshSessions } from '../../src/store/sessions-store.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { pool as runPool, prng } from '../helpers/oracle.ts';
import { waitFor } from '../helpers/poll.ts';
import {
  DIMENSIONS,
  insertRaw,
  sessionize,
  storedEvents,
  storedVisits,
  type Dimension,
  type SessionizerEvent,
} from '../helpers/sessionizer.ts';

const DAY = 86_400_000;
const MINUTE = 60_000;
const TIMEOUT = 10 * MINUTE;
const BASE = Math.floor(Date.now() / DAY) * DAY - DAY + 60 * MINUTE;

const NO_DIMENSIONS = Object.fromEntries(DIMENSIONS.map((d) => [d, null])) as Record<Dimension, null>;

function event(project: string, userId: string, eventId: string, ts: number): SessionizerEvent {
  return {
    ...NO_DIMENSIONS,
    project,
    userId,
    eventId,
    ts,
    type: 'page_view',
    sessionId: null,
    path: `/${eventId}`,
    isBot: false,
  };
}

async function assertExact(db: pg.Pool, project: string) {
  const expected = sessionize(await storedEvents(db, project), TIMEOUT);
  assert.deepEqual(await storedVisits(db, project), expected);
  return expected;
}

test('two transactions refreshing the same user concurrently end exact', { timeout: 240_000 }, async (t) => {
  const db = await startTestPostgres(t);
  await new RawPartitions(db.pool, undefined).ensure([BASE - (BASE % DAY), BASE - (BASE % DAY) + DAY]);
  const conns = new pg.Pool({ connectionString: db.connectionString, max: 4 });
  conns.on('error', () => undefined);
  try {
    await t.test(
      'interleaved: the second refresh waits for the first commit, then sees its events',
      async () => {
        for (const [first, second] of [
          [0, 5 * MINUTE],
          [5 * MINUTE, 0],
        ]) {
          const project = `interleaved-${first}`;
          // A project that has visits already has its timeout stored: without it, b would wait at
          // a's uncommitted insert of that row (the first refresh of a project), before the user lock.
          await db.pool.query('INSERT INTO tally.session_settings (project, timeout_ms) VALUES ($1, $2)', [
            project,
            TIMEOUT,
          ]);
          const a = await conns.connect();
          const b = await conns.connect();
          try {
            await a.query('BEGIN');
            await b.query('BEGIN');
            const bPid = (await b.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
            const fromA = await insertRaw(a, [event(project, 'u', 'a', BASE + first)]);
            await refreshSessions(a, fromA, TIMEOUT);
            // b's raw row goes in while a is still open: each alone would see only its own event.
            const fromB = await insertRaw(b, [event(project, 'u', 'b', BASE + second)]);
            const refreshB = refreshSessions(b, fromB, TIMEOUT);
            await waitFor(
              "the second refresh to wait on the user's advisory lock",
              async () =>
                (
                  await db.pool.query(
                    `SELECT 1 FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND NOT granted`,
                    [bPid],
                  )
                ).rows.length === 1,
              20_000,
              20,
            );
            await a.query('COMMIT');
            await refreshB;
            await b.query('COMMIT');
          } finally {
            a.release();
            b.release();
          }
          const visits = await assertExact(conns, project);
          assert.deepEqual(
            visits.map((v) => [v.startedAt - BASE, v.endedAt - BASE, v.events]),
            [[0, 5 * MINUTE, 2]],
          );
        }
      },
    );

    await t.test(
      'many concurrent batches over the same users, users in any order, and rebuilds: never deadlock, end exact',
      async () => {
        const project = 'concurrent';
        const random = prng(20);
        const users = ['u0', 'u1', 'u2'];
        // Clustered times, so batches keep extending, bridging and splitting each other's visits.
        const batches = Array.from({ length: 60 }, (_, b) =>
          Array.from({ length: 1 + Math.floor(random() * 6) }, (_, i) =>
            event(
              project,
              users[Math.floor(random() * users.length)],
              `b${b}-${i}`,
              BASE + Math.floor(random() * 40) * (TIMEOUT / 4) + Math.floor(random() * 3) - 1,
            ),
          ),
        );
        // A rebuild of the project now and then, between and during the batches.
        await runPool(
          batches.map((batch, b) => async () => {
            if (b % 15 === 7) await rebuildSessions(conns, project, TIMEOUT);
            const client = await conns.connect();
            try {
              await client.query('BEGIN');
              await refreshSessions(client, await insertRaw(client, batch), TIMEOUT);
              await client.query('COMMIT');
            } catch (err) {
              await client.query('ROLLBACK');
              throw err;
            } finally {
              client.release();
            }
          }),
          4,
        );
        const visits = await assertExact(conns, project);
        assert.ok(visits.length > 3, `visits cut by the timeout (${visits.length})`);
      },
    );
  } finally {
    await conns.end();
  }
});
