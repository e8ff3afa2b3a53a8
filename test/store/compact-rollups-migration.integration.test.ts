import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { piecesFor } from '../../src/query/range-pieces.ts';
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.ts';
import { migrate } from '../../src/store/migrate.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { createPool } from '../../src/store/pool.ts';
import { StatsStore } from '../../src/store/stats-store.ts';
import { findFreePort } from '../../src/util/free-port.ts';
import { Oracle, prng, type OracleEvent } from '../helpers/oracle.ts';
import { migrateBefore } from '../helpers/migrate-before.ts';
import { expectedRollups, storedState } from '../helpers/stored-state.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;

test(
  'migration 016 turns the rollups of a database written before it into the compact ones, same numbers',
  { timeout: 180_000 },
  async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tally-compact-'));
    const handle = await startEmbeddedPostgres({ dataDir, port: await findFreePort() });
    // The pool Tally uses (int8 read as numbers, as StatsStore expects).
    const pool = createPool(
      { connectionString: handle.connectionString, max: 3, applicationName: 'test-compact' },
      () => undefined,
    );
    t.after(async () => {
      await pool.end();
      await handle.stop();
      await rm(dataDir, { recursive: true, force: true });
    });
    await migrateBefore(pool, '016');

    // Events over two days and a bit, more users than one 8192-user chunk, a few pages.
    const random = prng(16);
    const start = Math.floor(Date.now() / DAY) * DAY - 3 * DAY;
    const events: OracleEvent[] = Array.from({ length: 3000 }, (_, i) => ({
      event_id: `e-${i}`,
      type: random() < 0.6 ? 'page_view' : 'click',
      user_id: `u-${Math.floor(random() * 9000)}`,
      ts: start + Math.floor(random() * 2.2 * DAY),
      ...(random() < 0.8
        ? { page_url: `https://shop.example/p/${Math.floor(random() * 12)}?x=${i % 3}` }
        : {}),
    }));
    const oracle = new Oracle();
    for (const e of events) oracle.add(e);

    // The rollups as the previous schema held them, built from raw rows the way bench/dataset.ts
    // built them before migration 016: counters, pages by URL, rollup_users, then its bits.
    await new RawPartitions(pool, undefined).ensure([start, start + DAY, start + 2 * DAY]);
    await pool.query(
      `INSERT INTO tally.events (project, event_id, type, user_id, ts, received_at, page_url)
       SELECT 'p', x.id, x.t, x.u, to_timestamp(x.ts / 1000.0), to_timestamp(x.ts / 1000.0), x.pu
         FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[]) AS x(id, t, u, ts, pu)`,
      [
        events.map((e) => e.event_id),
        events.map((e) => e.type),
        events.map((e) => e.user_id),
        events.map((e) => e.ts),
        events.map((e) => e.page_url ?? null),
      ],
    );
    for (const [level, unit] of [
      [0, 'minute'],
      [1, 'hour'],
      [2, 'day'],
    ] as const) {
      const bucket = `date_trunc('${unit}', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`;
      await pool.query(`INSERT INTO tally.rollup_events (project, level, bucket, type, count)
        SELECT project, ${level}, ${bucket}, type, count(*) FROM tally.events GROUP BY 1, 2, 3, 4`);
      await pool.query(`INSERT INTO tally.rollup_pages (project, level, bucket, type, page_url, count)
        SELECT project, ${level}, ${bucket}, type, page_url, count(*) FROM tally.events
         WHERE page_url IS NOT NULL GROUP BY 1, 2, 3, 4, 5`);
      await pool.query(`INSERT INTO tally.rollup_users (project, level, bucket, user_id)
        SELECT DISTINCT project, ${level}, ${bucket}, user_id FROM tally.events`);
    }
    await pool.query(`SELECT tally.rebuild_user_bits('p')`);

    assert.deepEqual((await migrate(pool)).applied.includes('016_compact_rollups.sql'), true);

    const stored = await storedState(pool, 'p');
    const expected = expectedRollups(events);
    assert.deepEqual(stored.events, expected.events, 'rollup_events');
    assert.deepEqual(stored.pages, expected.pages, 'rollup_pages by page number');
    assert.deepEqual(stored.users, expected.users, 'minute arrays and hour and day bits');
    assert.equal(stored.userBitCount, expected.users.length, 'no other member');

    // Distinct users over ragged ranges, and the seed view's users per minute.
    const stats = new StatsStore(pool);
    for (let k = 0; k < 10; k++) {
      const from = start + Math.floor((random() * 1.5 * DAY) / MINUTE) * MINUTE;
      const to = from + Math.floor((random() * DAY) / MINUTE) * MINUTE + MINUTE;
      const got = await stats.uniqueUsers('p', piecesFor(from, to, 0));
      assert.equal(got.get(0) ?? 0, oracle.summary(from, to).unique_users, `range ${from}..${to}`);
    }
    const { rows } = await pool.query<{ t: Date; n: number }>(
      `SELECT "timestamp" AT TIME ZONE 'UTC' AS t, unique_users AS n FROM public.user_activity_metrics WHERE project = 'p'`,
    );
    const perMinute = new Map<number, Set<string>>();
    for (const e of events) {
      const m = Math.floor(e.ts / MINUTE) * MINUTE;
      perMinute.set(m, (perMinute.get(m) ?? new Set()).add(e.user_id));
    }
    assert.equal(rows.length, perMinute.size);
    for (const r of rows)
      assert.equal(r.n, perMinute.get(r.t.getTime())?.size, `minute ${r.t.toISOString()}`);
  },
);
