import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type pg from 'pg';
import { RawPartitions } from '../../src/store/partitions.ts';
import { exportUser } from '../../src/store/user-export.ts';
import { userHash } from '../../src/store/user-hash.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';

const DAY = 86_400_000;

/** Raw rows as a batch stores them (the columns the export reads are the row's, whatever they are). */
async function insertEvents(
  pool: pg.Pool,
  project: string,
  userId: string,
  ids: readonly string[],
  now: number,
) {
  await pool.query(
    `INSERT INTO tally.events (project, event_id, type, user_id, ts, received_at, page_url, properties)
     SELECT $1, id, 'page_view', $2, to_timestamp(($3::float8 - 1000 * ord) / 1000), now(), '/p', jsonb_build_object('n', ord)
       FROM unnest($4::text[]) WITH ORDINALITY AS x(id, ord)`,
    [project, userId, now, ids],
  );
}

interface Line {
  kind: string;
  events?: number;
  visits?: number;
  deleted?: boolean;
  data?: Record<string, unknown>;
}

async function readAll(lines: AsyncIterable<string>): Promise<Line[]> {
  let text = '';
  for await (const chunk of lines) text += chunk;
  assert.ok(text.endsWith('\n'), 'whole lines');
  return text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
}

test(
  'exportUser: one snapshot over several fetches, audited before its first line, its connection returned when stopped early',
  { timeout: 120_000 },
  async (t) => {
    const { pool } = await startTestPostgres(t);
    const now = Date.now();
    await new RawPartitions(pool, undefined).ensure([
      Math.floor(now / DAY) * DAY,
      Math.floor(now / DAY) * DAY - DAY,
    ]);
    const ids = Array.from({ length: 2500 }, (_, i) => `u-${i}`);
    await insertEvents(pool, 'p', 'u', ids, now);
    await insertEvents(pool, 'p', 'v', ['v-1'], now);
    await insertEvents(pool, 'q', 'u', ['q-1'], now);
    await pool.query(
      `INSERT INTO tally.sessions (project, user_id, session_key, started_at, ended_at, events, page_views, is_bot)
       VALUES ('p', 'u', '', now() - interval '1 hour', now(), 2500, 2500, false)`,
    );
    await pool.query(`INSERT INTO tally.user_numbers (project, user_id, num) VALUES ('p', 'u', 7)`);
    const key = randomBytes(32);

    const lines = exportUser(pool, { project: 'p', userId: 'u', actor: 'test:1', key });
    const first = await lines.next();
    assert.equal(first.done, false);
    const header = JSON.parse(first.value) as Line;
    assert.deepEqual(
      { ...header, version: undefined },
      {
        kind: 'export',
        project: 'p',
        user_id: 'u',
        version: undefined,
        events: 2500,
        visits: 1,
        dead_letters: 0,
        deleted: false,
      },
    );
    const { rows: audit } = await pool.query<{
      actor: string;
      events: string;
      outcome: string;
      hashed: boolean;
    }>(
      `SELECT actor, events, outcome, user_hash = $1 AS hashed FROM tally.user_audit WHERE project = 'p' AND action = 'export'`,
      [userHash(key, 'u')],
    );
    assert.deepEqual(
      audit,
      [{ actor: 'test:1', events: '2500', outcome: 'ok', hashed: true }],
      'recorded first',
    );

    // Committed after the export began: not in it, though it is read in three fetches.
    await insertEvents(pool, 'p', 'u', ['late-1', 'late-2'], now);
    const rest = await readAll(lines);
    const events = rest.filter((l) => l.kind === 'event');
    assert.deepEqual(
      events.map((l) => l.data?.event_id),
      [...ids].reverse(),
      'every event of the user, oldest first, none of another user or project',
    );
    assert.deepEqual(events[0].data?.properties, { n: 2500 });
    assert.deepEqual(
      rest.map((l) => l.kind).filter((k) => k !== 'event'),
      ['visit', 'user_number', 'end'],
    );
    assert.equal(rest.find((l) => l.kind === 'user_number')?.data?.num, 7);

    // An unknown user: the header's zeros and the end; a tombstoned one: its tombstone.
    assert.deepEqual(
      (await readAll(exportUser(pool, { project: 'p', userId: 'nobody', actor: 'test:1', key }))).map((l) => [
        l.kind,
        l.events,
      ]),
      [
        ['export', 0],
        ['end', undefined],
      ],
    );
    await pool.query(`INSERT INTO tally.user_tombstones (project, user_hash) VALUES ('p', $1)`, [
      userHash(key, 'gone'),
    ]);
    const gone = await readAll(exportUser(pool, { project: 'p', userId: 'gone', actor: 'test:1', key }));
    assert.equal(gone[0].deleted, true);
    assert.deepEqual(
      gone.map((l) => l.kind),
      ['export', 'tombstone', 'end'],
    );
    assert.deepEqual(Object.keys(gone[1].data ?? {}), ['deleted_at', 'dropped_events', 'last_dropped_at']);

    // A second export lists the first one's audit row; stopped after its first fetch, it gives
    // its connection back and leaves no transaction open.
    const early = exportUser(pool, { project: 'p', userId: 'u', actor: 'test:2', key });
    await early.next();
    const chunk = await early.next();
    assert.equal((chunk.value as string).split('\n').length - 1, 1000, 'a fetch of 1000 lines');
    await early.return(undefined);
    assert.equal(pool.totalCount, pool.idleCount, 'every client back in the pool');
    const { rows: open } = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE state LIKE '%in transaction%' AND pid <> pg_backend_pid()`,
    );
    assert.equal(open[0].n, '0');
    const again = await readAll(exportUser(pool, { project: 'p', userId: 'u', actor: 'test:3', key }));
    assert.deepEqual(
      again.filter((l) => l.kind === 'audit').map((l) => [l.data?.action, l.data?.actor, l.data?.events]),
      [
        ['export', 'test:1', 2500],
        ['export', 'test:2', 2502],
      ],
    );
  },
);
