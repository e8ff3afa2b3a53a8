import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.ts';
import { migrate } from '../../src/store/migrate.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { findFreePort } from '../../src/util/free-port.ts';
import { migrateBefore } from '../helpers/migrate-before.ts';
import { prng } from '../helpers/oracle.ts';
import { BASE, DAY, MINUTE, pageView, writeBatch } from '../helpers/sessions-setup.ts';
import {
  insertRaw,
  sessionize,
  storedEvents,
  storedVisits,
  type SessionizerEvent,
  type Visit,
} from '../helpers/sessionizer.ts';

const TIMEOUT = 10 * MINUTE;

/** Random page views and clicks of three users over a few hours, gaps around the timeout. */
function randomEvents(project: string, seed: number, count: number, prefix: string): SessionizerEvent[] {
  const random = prng(seed);
  const gaps = [0, MINUTE, TIMEOUT, TIMEOUT + 1, 3 * TIMEOUT];
  return Array.from({ length: count }, (_, i) => ({
    ...pageView(project, `u${Math.floor(random() * 3)}`, `${prefix}${i}`, BASE),
    ts: BASE + gaps[Math.floor(random() * gaps.length)] * Math.floor(random() * 8),
    type: random() < 0.7 ? 'page_view' : 'click',
    path: `/p${Math.floor(random() * 4)}`,
    sessionId: random() < 0.15 ? 's1' : null,
  }));
}

/** The visits' numbers, the columns stored before migration 028, in primary-key order. */
async function numbers(db: pg.ClientBase, project: string): Promise<unknown[][]> {
  const { rows } = await db.query<{ v: unknown[] }>(
    `SELECT ARRAY[user_id, session_key, started_at::text, ended_at::text, events::text, page_views::text,
                  entry_page, exit_page] AS v
       FROM tally.sessions WHERE project = $1
      ORDER BY user_id COLLATE "C", session_key COLLATE "C", started_at`,
    [project],
  );
  return rows.map((r) => r.v);
}

/**
 * Migration 028: visits stored before it get the columns a merge needs (first_event_id, entry and
 * exit instants and ids) from their raw rows, no number changes; a visit whose start raw
 * retention dropped keeps NULLs and is recomputed from the rows still stored when touched again.
 * The earlier visits are written by migration 027's tally.refresh_sessions, as that release did.
 */
test(
  'migration 028 fills the new columns of the visits stored before it',
  { timeout: 180_000 },
  async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tally-visits-merge-'));
    const handle = await startEmbeddedPostgres({ dataDir, port: await findFreePort() });
    const pool = new pg.Pool({ connectionString: handle.connectionString, max: 2 });
    pool.on('error', () => undefined);
    t.after(async () => {
      await pool.end();
      await handle.stop();
      await rm(dataDir, { recursive: true, force: true });
    });
    await migrateBefore(pool, '028');
    const day0 = BASE - (BASE % DAY);
    await new RawPartitions(pool, undefined).ensure([day0, day0 + DAY]);
    const client = await pool.connect();
    try {
      await checkMigration(pool, client);
    } finally {
      client.release();
    }
  },
);

async function checkMigration(pool: pg.Pool, client: pg.PoolClient): Promise<void> {
  // Migration 027's refresh: the events' keys only.
  const writeBefore028 = async (events: SessionizerEvent[]) => {
    await client.query('BEGIN');
    const fresh = await insertRaw(client, events);
    await client.query(
      'SELECT tally.refresh_sessions($1::text[], $2::text[], $3::float8[], $4::text[], $5::float8)',
      [
        fresh.map((e) => e.project),
        fresh.map((e) => e.userId),
        fresh.map((e) => e.ts),
        fresh.map((e) => e.sessionId),
        TIMEOUT,
      ],
    );
    await client.query('COMMIT');
  };
  const whole = randomEvents('whole', 28, 60, 'w');
  const cut = randomEvents('cut', 29, 60, 'c');
  for (let i = 0; i < 60; i += 15) {
    await writeBefore028(whole.slice(i, i + 15));
    await writeBefore028(cut.slice(i, i + 15));
  }
  // As the retention would: the raw rows at a visit's start are gone, the visit stays (and the
  // raw cutoff of the batch below has passed its start).
  const { rows: firsts } = await client.query<{ userId: string; startedAt: number }>(
    `SELECT user_id AS "userId", (extract(epoch FROM started_at) * 1000)::float8 AS "startedAt"
       FROM tally.sessions WHERE project = 'cut' AND session_key = '' ORDER BY started_at LIMIT 1`,
  );
  const first = firsts[0];
  const before = await numbers(client, 'cut');
  await client.query(
    `DELETE FROM tally.events WHERE project = 'cut' AND user_id = $1 AND ts = to_timestamp($2 / 1000.0)`,
    [first.userId, first.startedAt],
  );

  const applied = (await migrate(pool)).applied;
  assert.equal(applied[0], '028_visits_merged.sql', `applied ${applied.join(', ')}`);

  assert.deepEqual(
    await storedVisits(client, 'whole'),
    sessionize(await storedEvents(client, 'whole'), TIMEOUT),
    'every column, the new ones too, as the raw rows give them',
  );
  assert.deepEqual(await numbers(client, 'cut'), before, 'no number changed');
  const after = await storedVisits(client, 'cut');
  const isFirst = (v: Visit) =>
    v.userId === first.userId && v.sessionKey === '' && v.startedAt === first.startedAt;
  assert.equal(after.find(isFirst)?.firstEventId, null, 'the visit whose start was dropped keeps NULLs');
  assert.ok(
    after.filter((v) => !isFirst(v)).every((v) => v.firstEventId !== null),
    'the others are filled',
  );

  // New events touching the visits: merged (whole) or recomputed from the rows still stored (the
  // one whose start was dropped, touched by the last event), either way what the raw rows give.
  const more = (project: string, prefix: string) =>
    randomEvents(project, 30, 40, prefix).map((e) => ({ ...e, ts: e.ts + 30_000 }));
  await writeBatch(client, more('whole', 'w2-'), TIMEOUT);
  await writeBatch(
    client,
    [...more('cut', 'c2-'), pageView('cut', first.userId, 'c2-first', first.startedAt + 1)],
    TIMEOUT,
    first.startedAt + 1,
  );
  for (const project of ['whole', 'cut']) {
    assert.deepEqual(
      await storedVisits(client, project),
      sessionize(await storedEvents(client, project), TIMEOUT),
      project,
    );
  }
}
