import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { TallyError } from '../../src/errors/tally-error.ts';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { migrate } from '../../src/store/migrate.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { rebuildSessions, SESSION_TIMEOUT_MISMATCH } from '../../src/store/sessions-store.ts';
import { toTallyEvent } from '../helpers/oracle.ts';
import { waitFor } from '../helpers/poll.ts';
import { insertRaw, storedEvents, type SessionizerEvent } from '../helpers/sessionizer.ts';
import {
  assertVisitsExact,
  BASE,
  MINUTE,
  pageView,
  startSessionsDb,
  writeBatch,
} from '../helpers/sessions-setup.ts';

const DEFAULT_TIMEOUT = 30 * MINUTE;

/** `p`, or a failure after `ms` (a batch that waits on a lock would otherwise hang the test). */
async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function storedTimeout(db: pg.Pool, project: string): Promise<number | undefined> {
  const { rows } = await db.query<{ t: number }>(
    'SELECT timeout_ms AS t FROM tally.session_settings WHERE project = $1',
    [project],
  );
  return rows[0]?.t;
}

test(
  'visits: migration 013, the stored timeout, the per-project rebuild lock',
  { timeout: 300_000 },
  async (t) => {
    const { db, conns } = await startSessionsDb(t);

    await t.test('migration 013 builds the visits of events stored before 010', async () => {
      // Raw rows with no visits and no stored timeout: a database upgraded from before 010.
      const before: SessionizerEvent[] = [];
      for (const project of ['old-a', 'old-b']) {
        let ts = BASE;
        for (let i = 0; i < 40; i++) {
          ts += [MINUTE, DEFAULT_TIMEOUT, DEFAULT_TIMEOUT + 1, 2 * DEFAULT_TIMEOUT][i % 4];
          before.push(pageView(project, `u${i % 3}`, `e${i}`, ts, { sessionId: i % 7 === 0 ? 's' : null }));
        }
      }
      await insertRaw(db.pool, before);
      assert.equal((await db.pool.query('SELECT 1 FROM tally.sessions')).rows.length, 0);
      // Migration 013 again, as the runner applies it to such a database.
      await db.pool.query(`DELETE FROM tally.schema_migrations WHERE name = '013_rebuild_sessions.sql'`);
      await db.pool.query('DROP FUNCTION tally.raw_projects()');
      assert.deepEqual((await migrate(db.pool)).applied, ['013_rebuild_sessions.sql']);
      for (const project of ['old-a', 'old-b']) {
        await assertVisitsExact(db.pool, project, DEFAULT_TIMEOUT);
        assert.equal(await storedTimeout(db.pool, project), DEFAULT_TIMEOUT);
      }
      // The upgrade's bug: a new event within the timeout of the last old one continues its visit.
      const last = Math.max(...before.filter((e) => e.project === 'old-a').map((e) => e.ts));
      const client = await conns.connect();
      try {
        await writeBatch(client, [pageView('old-a', 'u0', 'new', last + MINUTE)], DEFAULT_TIMEOUT);
      } finally {
        client.release();
      }
      await assertVisitsExact(db.pool, 'old-a', DEFAULT_TIMEOUT);
    });

    await t.test(
      'a batch with another timeout fails with TALLY_SESSION_TIMEOUT_MISMATCH; a rebuild stores the new one',
      async () => {
        const writer = (timeoutMs: number) =>
          new BatchWriter({
            pool: db.pool,
            partitions: new RawPartitions(db.pool, undefined),
            storeRaw: true,
            sessionTimeoutMs: timeoutMs,
          });
        const tally = (id: string, ts: number) =>
          toTallyEvent({ event_id: id, type: 'page_view', user_id: 'u', ts }, 'timeouts');
        await writer(10 * MINUTE).write({ events: [tally('a', BASE)] });
        assert.equal(await storedTimeout(db.pool, 'timeouts'), 10 * MINUTE);

        await assert.rejects(writer(20 * MINUTE).write({ events: [tally('b', BASE + MINUTE)] }), (err) => {
          assert.ok(err instanceof TallyError);
          assert.equal(err.code, 'TALLY_SESSION_TIMEOUT_MISMATCH');
          assert.equal(err.retriable, false);
          assert.match(
            err.message,
            /built with a session timeout of 10 min.*uses 20 min.*tally sessions rebuild/,
          );
          return true;
        });
        // Nothing of the refused batch was stored.
        assert.equal((await storedEvents(db.pool, 'timeouts')).length, 1);
        // The function alone raises the SQLSTATE the writer maps.
        const client = await conns.connect();
        try {
          await assert.rejects(writeBatch(client, [pageView('timeouts', 'u', 'c', BASE)], 20 * MINUTE), {
            code: SESSION_TIMEOUT_MISMATCH,
          });
        } finally {
          client.release();
        }

        await rebuildSessions(db.pool, 'timeouts', 20 * MINUTE);
        assert.equal(await storedTimeout(db.pool, 'timeouts'), 20 * MINUTE);
        await writer(20 * MINUTE).write({ events: [tally('b', BASE + 15 * MINUTE)] });
        await assertVisitsExact(db.pool, 'timeouts', 20 * MINUTE);
        await assert.rejects(writer(10 * MINUTE).write({ events: [tally('d', BASE)] }), {
          code: 'TALLY_SESSION_TIMEOUT_MISMATCH',
        });
      },
    );

    await t.test('tally start refuses another timeout than the stored one, in one line', async () => {
      // Project "timeouts" now has 20 min stored, the others 10 or 30.
      const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
      const env = {
        ...process.env,
        DATABASE_URL: db.connectionString,
        SERVER_PORT: '0',
        TALLY_GRPC_PORT: '0',
        TALLY_SESSION_TIMEOUT_MIN: '25',
      };
      await assert.rejects(
        promisify(execFile)(process.execPath, [main, 'start'], { env, timeout: 60_000 }),
        (err) => {
          const e = err as { code: number; stderr: string };
          assert.equal(e.code, 2);
          assert.match(
            e.stderr,
            /^tally: TALLY_SESSION_TIMEOUT_MIN is 25, but the visits of project \S+ \(and \d+ more projects\) were built with \d+: run `tally sessions rebuild` with TALLY_SESSION_TIMEOUT_MIN=25, or set TALLY_SESSION_TIMEOUT_MIN=\d+\n$/,
          );
          return true;
        },
      );
    });

    await t.test("a project's rebuild holds its batches, not another project's", async () => {
      const timeout = 10 * MINUTE;
      const seed = await conns.connect();
      try {
        await writeBatch(
          seed,
          [pageView('rb-a', 'u', 'a1', BASE), pageView('rb-b', 'u', 'b1', BASE)],
          timeout,
        );
      } finally {
        seed.release();
      }
      const rebuild = await conns.connect();
      const other = await conns.connect();
      const same = await conns.connect();
      try {
        // rebuildSessions's transaction, kept open: the data version row, then the project lock.
        await rebuild.query('BEGIN');
        await rebuild.query(
          `INSERT INTO tally.data_versions AS v (project, version) VALUES ('rb-a', 1)
         ON CONFLICT (project) DO UPDATE SET version = v.version + 1`,
        );
        await rebuild.query('SELECT tally.rebuild_sessions($1, $2)', ['rb-a', timeout]);

        // Project B's batch commits while A's rebuild is open (a table lock would hold it).
        await withDeadline(
          writeBatch(other, [pageView('rb-b', 'u', 'b2', BASE + MINUTE)], timeout),
          20_000,
          "project B's batch during project A's rebuild",
        );
        await assertVisitsExact(db.pool, 'rb-b', timeout);

        // Project A's batch waits for the rebuild at the project lock, then sees its visits.
        const samePid = (await same.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
        const waiting = writeBatch(same, [pageView('rb-a', 'u', 'a2', BASE + MINUTE)], timeout);
        await waitFor(
          "project A's batch to wait on the project lock",
          async () =>
            (
              await db.pool.query(
                `SELECT 1 FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND objsubid = 2 AND NOT granted`,
                [samePid],
              )
            ).rows.length === 1,
          20_000,
        );
        await rebuild.query('COMMIT');
        await waiting;
        await assertVisitsExact(db.pool, 'rb-a', timeout);
      } finally {
        await rebuild.query('ROLLBACK').catch(() => undefined);
        for (const c of [rebuild, other, same]) c.release();
      }
    });

    await t.test('a rebuild runs past the pool statement_timeout', async () => {
      const timeout = 10 * MINUTE;
      const many: SessionizerEvent[] = [];
      for (let i = 0; i < 40_000; i++) many.push(pageView('big', `u${i % 500}`, `e${i}`, BASE + i * 1000));
      await insertRaw(db.pool, many);
      const limited = new pg.Pool({ connectionString: db.connectionString, max: 1, statement_timeout: 20 });
      limited.on('error', () => undefined);
      try {
        // The statement alone does not fit in it: the test would fail without the SET LOCAL.
        await assert.rejects(limited.query('SELECT tally.rebuild_sessions($1, $2)', ['big', timeout]), {
          code: '57014',
        });
        assert.ok((await rebuildSessions(limited, 'big', timeout)) > 0);
      } finally {
        await limited.end();
      }
      await assertVisitsExact(db.pool, 'big', timeout);
    });
  },
);
