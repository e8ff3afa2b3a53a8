/**
 * A lab script for issue 22's deletion (src/store/user-deletion.ts, migration 022): loads the web
 * data set (bench/web-dataset.ts) through the real write path into an embedded PostgreSQL of its
 * own, adds one heavy user through the same writer, and times deleting that user, against the
 * same delete as plain SQL without the rollup corrections (raw rows, dedup keys, visits; in a
 * transaction rolled back, before the real one).
 *
 *   node bench/delete-user-lab.ts [events] [heavy user's events]     (default 1000000 100000)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TallyEvent } from '../src/event/types.ts';
import { BatchWriter } from '../src/store/batch-writer.ts';
import { startEmbeddedPostgres } from '../src/store/embedded-postgres.ts';
import { migrate } from '../src/store/migrate.ts';
import { RawPartitions } from '../src/store/partitions.ts';
import { deleteUser } from '../src/store/user-deletion.ts';
import { loadThroughWriter } from './lib/analytics-load.ts';
import { SITE, WebDataset } from './web-dataset.ts';

const [eventsArg = '1000000', heavyArg = '100000'] = process.argv.slice(2);
const EVENTS = Number(eventsArg);
const HEAVY = Number(heavyArg);
const DAY = 86_400_000;
const USER = 'heavy-user';
const DESKTOP =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

/** `n` events of one user over the data set's 30 days: visits of 100 events 3 s apart, at least 31 min between. */
function* heavyUser(n: number, start: number): Generator<TallyEvent[]> {
  let batch: TallyEvent[] = [];
  const gap = Math.max(31 * 60_000, Math.floor((30 * DAY) / Math.ceil(n / 100) - 99 * 3_000));
  let t = start;
  for (let i = 0; i < n; i++) {
    if (i > 0) t += i % 100 === 0 ? gap : 3_000;
    batch.push({
      project: 'default',
      eventId: `heavy-${i}`,
      type: i % 5 === 4 ? 'click' : 'page_view',
      userId: USER,
      ts: t,
      receivedAt: t,
      pageUrl: `${SITE}/p/${i % 40}`,
      referrer: null,
      sessionId: null,
      userAgent: DESKTOP,
      country: 'DE',
      service: null,
      properties: null,
    });
    if (batch.length === 2_000) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

const seconds = (t0: number) => ((performance.now() - t0) / 1000).toFixed(2);
const dataDir = await mkdtemp(join(tmpdir(), 'tally-delete-user-lab-'));
const server = await startEmbeddedPostgres({ dataDir });
const pool = new pg.Pool({ connectionString: server.connectionString, max: 3 });
try {
  await migrate(pool);
  const end = Math.floor(Date.now() / 60_000) * 60_000 - DAY;
  const dataset = new WebDataset({ events: EVENTS, end, days: 30, seed: 22 });
  const load = await loadThroughWriter(pool, dataset, {
    events: EVENTS,
    batchSize: 2_000,
    inFlight: 2,
    log: (line) => console.log(line),
  });
  console.log(`loaded ${EVENTS} events in ${load.seconds.toFixed(1)} s`);
  const writer = new BatchWriter({ pool, partitions: new RawPartitions(pool, undefined), storeRaw: true });
  let t0 = performance.now();
  for (const batch of heavyUser(HEAVY, dataset.start)) await writer.write({ events: batch });
  console.log(`heavy user: ${HEAVY} events written in ${seconds(t0)} s`);
  await pool.query('VACUUM ANALYZE');

  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SET LOCAL statement_timeout = 0');
    t0 = performance.now();
    await client.query(
      `DELETE FROM tally.event_ids i USING tally.events e
        WHERE e.project = 'default' AND e.user_id = $1 AND i.project = 'default' AND i.event_id = e.event_id`,
      [USER],
    );
    const raw = await client.query(`DELETE FROM tally.events WHERE project = 'default' AND user_id = $1`, [
      USER,
    ]);
    await client.query(`DELETE FROM tally.sessions WHERE project = 'default' AND user_id = $1`, [USER]);
    console.log(`plain SQL (keys, ${raw.rowCount} raw rows, visits; no rollups): ${seconds(t0)} s`);
    await client.query('ROLLBACK');
  } finally {
    client.release();
  }

  t0 = performance.now();
  const deleted = await deleteUser(pool, {
    project: 'default',
    userId: USER,
    actor: 'bench',
    key: Buffer.alloc(32, 1),
  });
  console.log(`deleteUser: ${seconds(t0)} s, ${JSON.stringify(deleted)}`);
} finally {
  await pool.end();
  await server.stop();
  await rm(dataDir, { recursive: true, force: true });
}
