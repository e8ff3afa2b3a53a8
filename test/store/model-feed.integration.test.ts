import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import type pg from 'pg';
import { deriveDimensions } from '../../src/event/derive.ts';
import type { TallyEvent } from '../../src/event/types.ts';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { bumpDataVersions } from '../../src/store/data-versions.ts';
import {
  markModelRebuild,
  MODEL_CHANGES_KEEP_MS,
  pruneModelChanges,
  readModelChanges,
} from '../../src/store/model-feed.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';

const DAY_MS = 86_400_000;
const BOT_UA = 'TestBot/1.0';
const derive = (e: TallyEvent) => ({ ...deriveDimensions(e), bot: e.userAgent === BOT_UA });
// Raw rows are kept for two days: an event ten days old is fresh (counted) but not stored raw.
const RETENTION_DAYS = 2;

function event(project: string, id: string, user: string, ts: number, bot = false): TallyEvent {
  return {
    project,
    eventId: id,
    type: 'page_view',
    userId: user,
    ts,
    receivedAt: ts,
    pageUrl: '/a',
    referrer: null,
    sessionId: null,
    userAgent: bot ? BOT_UA : 'Mozilla/5.0',
    country: null,
    service: null,
    properties: null,
  };
}

interface FeedRow {
  project: string;
  version: number;
  users: string[];
}

async function feedRows(pool: pg.Pool, projects: readonly string[]): Promise<FeedRow[]> {
  const { rows } = await pool.query<{ project: string; version: string; user_ids: string[] }>(
    `SELECT project, version, user_ids FROM tally.model_changes
      WHERE project = ANY ($1) ORDER BY project, version`,
    [projects],
  );
  return rows.map((r) => ({ project: r.project, version: Number(r.version), users: [...r.user_ids].sort() }));
}

async function version(pool: pg.Pool, project: string): Promise<number> {
  const { rows } = await pool.query<{ version: string }>(
    'SELECT version FROM tally.data_versions WHERE project = $1',
    [project],
  );
  return rows.length === 0 ? 0 : Number(rows[0].version);
}

/** A few ids, users, projects and two ages (stored raw or not), so that keys come again. */
const item = fc.record({
  project: fc.integer({ min: 0, max: 2 }),
  id: fc.integer({ min: 0, max: 9 }),
  user: fc.constantFrom('u1', 'u2', 'u3', 'u4'),
  old: fc.boolean(),
  bot: fc.boolean(),
});

test(
  'each bump of a batch has a feed row listing the distinct users of its fresh events stored raw; versions contiguous',
  { timeout: 300_000 },
  async (t) => {
    const db = await startTestPostgres(t);
    const now = Date.now();
    const cutoff = new RawPartitions(db.pool, RETENTION_DAYS).cutoff(now);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(item, { maxLength: 8 }), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        async (batches, storeRaw) => {
          const run = randomUUID();
          const projects = [0, 1, 2].map((p) => `p${p}-${run}`);
          const writer = new BatchWriter({
            pool: db.pool,
            partitions: new RawPartitions(db.pool, RETENTION_DAYS),
            storeRaw,
            derive,
          });
          const seen = new Set<string>();
          const expected: FeedRow[] = [];
          const versions = new Map<string, number>();
          for (const batch of batches) {
            const events = batch.map((it) =>
              event(
                projects[it.project],
                `e${it.id}`,
                it.user,
                it.old ? now - 10 * DAY_MS : now - 60_000,
                it.bot,
              ),
            );
            // The oracle: the first event sent with a key is fresh, in its batch too.
            const users = new Map<string, Set<string>>();
            for (const e of events) {
              const key = `${e.project}|${e.eventId}`;
              if (seen.has(key)) continue;
              seen.add(key);
              const set = users.get(e.project) ?? new Set<string>();
              if (storeRaw && e.ts >= cutoff) set.add(e.userId);
              users.set(e.project, set);
            }
            for (const [project, set] of users) {
              const v = (versions.get(project) ?? 0) + 1;
              versions.set(project, v);
              expected.push({ project, version: v, users: [...set].sort() });
            }
            await writer.write({ events });
          }
          const byKey = (a: FeedRow, b: FeedRow) =>
            a.project < b.project ? -1 : a.project > b.project ? 1 : a.version - b.version;
          assert.deepEqual(await feedRows(db.pool, projects), expected.sort(byKey));
          for (const project of projects) {
            assert.equal(await version(db.pool, project), versions.get(project) ?? 0, `${project}'s version`);
          }

          // The same users as the raw rows themselves: the feed's condition is write_events' own.
          const { rows } = await db.pool.query<{ project: string; users: string[] }>(
            `SELECT project, array_agg(DISTINCT user_id ORDER BY user_id) AS users
               FROM tally.events WHERE project = ANY ($1) GROUP BY project ORDER BY project`,
            [projects],
          );
          const fromFeed = new Map<string, Set<string>>();
          for (const r of expected) {
            const set = fromFeed.get(r.project) ?? new Set<string>();
            for (const u of r.users) set.add(u);
            fromFeed.set(r.project, set);
          }
          assert.deepEqual(
            rows.map((r) => [r.project, r.users]),
            [...fromFeed]
              .filter(([, set]) => set.size > 0)
              .map(([p, set]) => [p, [...set].sort()])
              .sort(),
          );
        },
      ),
      { numRuns: 40 },
    );
  },
);

test('a batch of re-sent events moves no version and writes no row; fresh events none stored raw write an empty row', async (t) => {
  const db = await startTestPostgres(t);
  const project = `p-${randomUUID()}`;
  const writer = new BatchWriter({
    pool: db.pool,
    partitions: new RawPartitions(db.pool, RETENTION_DAYS),
    storeRaw: true,
  });
  const now = Date.now();
  await writer.write({ events: [event(project, 'a', 'u1', now)] });
  await writer.write({ events: [event(project, 'a', 'u1', now)] });
  await writer.write({ events: [event(project, 'old', 'u2', now - 10 * DAY_MS)] });
  assert.deepEqual(await feedRows(db.pool, [project]), [
    { project, version: 1, users: ['u1'] },
    { project, version: 2, users: [] },
  ]);
});

test('a batch and its feed rows commit together: a feed row that cannot be written fails the batch', async (t) => {
  const db = await startTestPostgres(t);
  const project = `p-${randomUUID()}`;
  const writer = new BatchWriter({
    pool: db.pool,
    partitions: new RawPartitions(db.pool, undefined),
    storeRaw: true,
  });
  await writer.write({ events: [event(project, 'a', 'u1', Date.now())] });
  // A row already at the next version (which nothing else writes) makes the feed's insert fail.
  await db.pool.query(`INSERT INTO tally.model_changes (project, version, user_ids) VALUES ($1, 2, '{}')`, [
    project,
  ]);
  await assert.rejects(writer.write({ events: [event(project, 'b', 'u2', Date.now())] }));
  assert.equal(await version(db.pool, project), 1, 'the version did not move');
  const { rows } = await db.pool.query('SELECT 1 FROM tally.event_ids WHERE project = $1', [project]);
  assert.equal(rows.length, 1, "the failed batch's key was not kept");
});

test('readModelChanges: the union of an interval, complete only while every version has a row', async (t) => {
  const db = await startTestPostgres(t);
  const project = `p-${randomUUID()}`;
  const writer = new BatchWriter({
    pool: db.pool,
    partitions: new RawPartitions(db.pool, undefined),
    storeRaw: true,
  });
  const ts = Date.now();
  await writer.write({ events: [event(project, 'a', 'u1', ts), event(project, 'b', 'u2', ts)] }); // 1
  await writer.write({ events: [event(project, 'c', 'u2', ts)] }); // 2
  await writer.write({ events: [event(project, 'd', 'u3', ts), event(`other-${project}`, 'x', 'u9', ts)] }); // 3
  const read = async (after: number, upTo: number) => {
    const r = await readModelChanges(db.pool, project, after, upTo);
    return { complete: r.complete, users: [...r.users].sort() };
  };
  assert.deepEqual(await read(0, 3), { complete: true, users: ['u1', 'u2', 'u3'] });
  assert.deepEqual(await read(1, 3), { complete: true, users: ['u2', 'u3'] });
  assert.deepEqual(await read(1, 2), { complete: true, users: ['u2'] });
  assert.deepEqual(await read(3, 3), { complete: true, users: [] }, 'nothing to catch up');
  assert.deepEqual(await read(0, 4), { complete: false, users: [] }, 'a version not written yet');
  assert.deepEqual(await read(3, 2), { complete: false, users: [] }, 'a reader ahead of the version');

  await markModelRebuild(db.pool, [project]); // 4: no row
  await writer.write({ events: [event(project, 'e', 'u4', ts)] }); // 5
  assert.equal(await version(db.pool, project), 5);
  assert.deepEqual(await read(0, 5), { complete: false, users: [] }, 'the rebuild has no row: reload');
  assert.deepEqual(await read(3, 4), { complete: false, users: [] });
  assert.deepEqual(await read(4, 5), { complete: true, users: ['u4'] }, 'incremental again after the reload');

  await bumpDataVersions(db.pool, 'all'); // 6, as retention does: no row either
  assert.deepEqual(await read(5, 6), { complete: false, users: [] });
});

test('pruning deletes the feed rows older than MODEL_CHANGES_KEEP_MS only', async (t) => {
  const db = await startTestPostgres(t);
  const project = `p-${randomUUID()}`;
  const now = Date.now();
  const ages = [MODEL_CHANGES_KEEP_MS * 3, MODEL_CHANGES_KEEP_MS + 60_000, MODEL_CHANGES_KEEP_MS - 60_000, 0];
  for (const [i, age] of ages.entries()) {
    await db.pool.query(
      `INSERT INTO tally.model_changes (project, version, user_ids, created_at)
       VALUES ($1, $2, '{u}', to_timestamp($3 / 1000.0))`,
      [project, i + 1, now - age],
    );
  }
  assert.equal(await pruneModelChanges(db.pool, now), 2);
  assert.deepEqual(
    (await feedRows(db.pool, [project])).map((r) => r.version),
    [3, 4],
  );
  // The reader behind the pruned rows reloads (the gap rule); one after them goes on.
  assert.equal((await readModelChanges(db.pool, project, 0, 4)).complete, false);
  assert.equal((await readModelChanges(db.pool, project, 2, 4)).complete, true);
});
