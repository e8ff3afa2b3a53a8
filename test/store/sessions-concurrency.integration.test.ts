import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rebuildSessions, refreshSessions } from '../../src/store/sessions-store.ts';
import { pool as runPool, prng } from '../helpers/oracle.ts';
import { waitFor } from '../helpers/poll.ts';
import { insertRaw } from '../helpers/sessionizer.ts';
import {
  assertVisitsExact,
  BASE,
  MINUTE,
  pageView,
  startSessionsDb,
  writeBatch,
} from '../helpers/sessions-setup.ts';

const TIMEOUT = 10 * MINUTE;

const event = (project: string, userId: string, eventId: string, ts: number) =>
  pageView(project, userId, eventId, ts, { path: `/${eventId}` });

test('two transactions refreshing the same user concurrently end exact', { timeout: 240_000 }, async (t) => {
  const { db, conns } = await startSessionsDb(t);
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
        const visits = await assertVisitsExact(conns, project, TIMEOUT);
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
            await writeBatch(client, batch, TIMEOUT);
          } finally {
            client.release();
          }
        }),
        4,
      );
      const visits = await assertVisitsExact(conns, project, TIMEOUT);
      assert.ok(visits.length > 3, `visits cut by the timeout (${visits.length})`);
    },
  );
});
