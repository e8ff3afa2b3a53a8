import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TallyEvent } from '../../src/event/types.ts';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { DataVersions } from '../../src/store/data-versions.ts';
import { DAY as DAY_LEVEL } from '../../src/store/levels.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';

const DAY = 86_400_000;

function event(i: number, ts: number): TallyEvent {
  return {
    project: 'default',
    eventId: `ret-${i}`,
    type: 'click',
    userId: `u-${i % 5}`,
    ts,
    receivedAt: ts,
    pageUrl: null,
    referrer: null,
    sessionId: null,
    userAgent: null,
    country: null,
    service: null,
    properties: null,
  };
}

test('raw retention: old day partitions and dedup keys go, rollups stay, cached answers are invalidated', async (t) => {
  const db = await startTestPostgres(t);
  const today = Math.floor(Date.now() / DAY) * DAY;
  // Written while retention is off: raw rows for each of the last 6 days.
  const keepAll = new RawPartitions(db.pool, undefined);
  const writer = new BatchWriter({ pool: db.pool, partitions: keepAll, storeRaw: true });
  const events = Array.from({ length: 60 }, (_, i) => event(i, today - (i % 6) * DAY + 3_600_000));
  await writer.write({ events });
  await db.pool.query(
    `UPDATE tally.event_ids SET seen_at = to_timestamp((split_part(event_id, '-', 2)::int % 6) * -86400 + $1 / 1000.0)`,
    [today + 3_600_000],
  );
  const versions = new DataVersions(db.pool);
  const before = await versions.current('default');

  const retention = new RawPartitions(db.pool, 2);
  const { dropped, forgottenIds } = await retention.applyRetention();
  // Cutoff is the start of the day two days ago: days -5 … -3 are wholly older.
  assert.equal(dropped.length, 3, `dropped ${dropped.join(', ')}`);
  const days = await db.pool.query<{ d: number; n: number }>(
    `SELECT ((extract(epoch from ts) * 1000 - $1) / 86400000)::int AS d, count(*)::int AS n
       FROM tally.events GROUP BY 1 ORDER BY 1`,
    [today + 3_600_000],
  );
  assert.deepEqual(
    days.rows.map((r) => r.d),
    [-2, -1, 0],
  );
  // The dedup ledger keeps one day more than the raw rows: only days -5 and -4 are forgotten.
  assert.equal(forgottenIds, 20);
  const rollup = await db.pool.query<{ n: number }>(
    `SELECT sum(count)::int AS n FROM tally.rollup_events WHERE project = 'default' AND level = ${DAY_LEVEL.level}`,
  );
  assert.equal(rollup.rows[0].n, 60, 'rollups keep every event');
  assert.ok((await versions.current('default')) > before, 'the data version moved');

  // An event older than the window is counted in the rollups, and not stored raw.
  const late = new BatchWriter({ pool: db.pool, partitions: retention, storeRaw: true });
  await late.write({ events: [event(1000, today - 4 * DAY)] });
  const raw = await db.pool.query(`SELECT 1 FROM tally.events WHERE event_id = 'ret-1000'`);
  assert.equal(raw.rowCount, 0);
  const after = await db.pool.query<{ n: number }>(
    `SELECT sum(count)::int AS n FROM tally.rollup_events WHERE project = 'default' AND level = ${DAY_LEVEL.level}`,
  );
  assert.equal(after.rows[0].n, 61);

  // Again, with one key already stored: no raw row to keep, and only the new event is counted.
  const again = await late.write({ events: [event(1000, today - 4 * DAY), event(1001, today - 4 * DAY)] });
  assert.deepEqual(again.fresh, [false, true]);
  const twice = await db.pool.query<{ n: number }>(
    `SELECT sum(count)::int AS n FROM tally.rollup_events WHERE project = 'default' AND level = ${DAY_LEVEL.level}`,
  );
  assert.equal(twice.rows[0].n, 62, 'the stored key is not counted again');
  const none = await db.pool.query(`SELECT 1 FROM tally.events WHERE event_id IN ('ret-1000', 'ret-1001')`);
  assert.equal(none.rowCount, 0);
});
