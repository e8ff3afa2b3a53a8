import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type pg from 'pg';
import { TallyError } from '../../src/errors/tally-error.ts';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { deleteUser } from '../../src/store/user-deletion.ts';
import { storedState } from '../helpers/stored-state.ts';
import { eventsOf, projectState, twinDatabase, writeAll } from '../helpers/twin-projects.ts';
import { prng } from '../helpers/oracle.ts';

const KEY = Buffer.alloc(32, 7);
const DAY_MS = 86_400_000;
/** Minute, hour, day: the levels 0, 1, 2 and their widths (the contract of the rollups). */
const WIDTHS = [60_000, 3_600_000, 86_400_000];

/**
 * The deleted user's share of each counter row, from the contract: each of its events counts once
 * in the row of (level, its time floored to the level's width, type[, page]). Keys in the form of
 * storedState, without the count.
 */
function shares(events: readonly { type: string; ts: number; page: string | null }[]) {
  const counts = new Map<string, number>();
  const pages = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  for (const e of events)
    WIDTHS.forEach((w, level) => {
      const key = `${level}|${Math.floor(e.ts / w) * w}|${e.type}`;
      bump(counts, key);
      if (e.page !== null) bump(pages, `${key}|${e.page}`);
    });
  return { events: counts, pages };
}

/** Each stored row ("key|count") less the share of its key; rows left at 0 are gone. */
function minus(rows: readonly string[], share: ReadonlyMap<string, number>): string[] {
  return rows
    .map((r) => {
      const cut = r.lastIndexOf('|');
      const key = r.slice(0, cut);
      return [key, Number(r.slice(cut + 1)) - (share.get(key) ?? 0)] as const;
    })
    .filter(([, n]) => n !== 0)
    .map(([key, n]) => `${key}|${n}`)
    .sort();
}

/** Sets (or, with null, deletes) the counter row `key` of `table` in `project`: the fault. */
async function setRow(
  pool: pg.Pool,
  project: string,
  table: 'events' | 'pages',
  key: string,
  count: number | null,
): Promise<void> {
  const [level, bucket, type, page] = key.split('|');
  const target = table === 'events' ? 'tally.rollup_events' : 'tally.rollup_pages';
  const ofPage =
    table === 'pages' ? ' AND page_id = (SELECT id FROM tally.page_urls WHERE page_url = $5)' : '';
  const where = `WHERE project = $1 AND level = $2 AND bucket = to_timestamp($3::float8 / 1000) AND type = $4${ofPage}`;
  const params = [project, Number(level), Number(bucket), type, ...(table === 'pages' ? [page] : [])];
  const sql =
    count === null ? `DELETE FROM ${target} ${where}` : `UPDATE ${target} SET count = ${count} ${where}`;
  const { rowCount } = await pool.query(sql, params);
  assert.equal(rowCount, 1, `${table} row ${key} found`);
}

const item = fc.record({
  user: fc.constantFrom('u1', 'u2'),
  type: fc.constantFrom('page_view', 'click'),
  minute: fc.integer({ min: 0, max: 150 }),
  page: fc.option(fc.constantFrom('/a', '/b'), { nil: null }),
});

test(
  "property: each rollup row drops by the deleted user's share (a row holding more keeps the rest); a row holding less, or missing, refuses the deletion with nothing changed",
  { timeout: 600_000 },
  async (t) => {
    const pool = await twinDatabase(t);
    const writer = new BatchWriter({ pool, partitions: new RawPartitions(pool, undefined), storeRaw: true });
    // Across the midnight before yesterday's end: minutes, hours and two days.
    const base = Math.floor(Date.now() / DAY_MS) * DAY_MS - DAY_MS - 90 * 60_000;
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(item, { minLength: 1, maxLength: 30 }).filter((xs) => xs.some((x) => x.user === 'u1')),
        fc.constantFrom('events', 'pages'),
        fc.nat(),
        fc.constantFrom('more', 'less', 'missing'),
        fc.integer({ min: 1, max: 3 }),
        async (items, table, pick, fault, extra) => {
          run += 1;
          const project = `P${run}`;
          const bodies = items.map((x, i) => ({
            event_id: `e${i}`,
            type: x.type,
            user_id: x.user,
            timestamp: base + x.minute * 60_000 + i,
            ...(x.page === null ? {} : { page_url: x.page }),
          }));
          await writeAll(writer, eventsOf(bodies, project, Date.now()), prng(run), 8);
          const own = shares(
            items.flatMap((x, i) =>
              x.user === 'u1' ? [{ type: x.type, ts: base + x.minute * 60_000 + i, page: x.page }] : [],
            ),
          );
          const share = table === 'events' ? own.events : own.pages;
          if (share.size === 0) return; // u1 saw no page: no pages row to fault
          const [key, n] = [...share].sort()[pick % share.size];
          const stored = (await storedState(pool, project))[table].find((r) => r.startsWith(`${key}|`))!;
          const count = Number(stored.slice(stored.lastIndexOf('|') + 1));
          if (fault === 'more') await setRow(pool, project, table, key, count + extra);
          else await setRow(pool, project, table, key, fault === 'less' ? n - 1 : null);
          const before = await projectState(pool, project);

          const result = await deleteUser(pool, { project, userId: 'u1', actor: 'cli:test', key: KEY }).then(
            (r) => r,
            (e: unknown) => e,
          );
          if (fault === 'more') {
            assert.ok(!(result instanceof Error), String(result));
            const after = await storedState(pool, project);
            assert.deepEqual(after.events, minus(before.events, own.events));
            assert.deepEqual(after.pages, minus(before.pages, own.pages));
            assert.ok(after[table].includes(`${key}|${count + extra - n}`), `${key} keeps the rest`);
          } else {
            assert.ok(result instanceof TallyError, `refused: ${JSON.stringify(result)}`);
            assert.equal(result.code, 'TALLY_DB_ERROR');
            assert.match(result.message, /disagrees with the raw rows of the user/);
            assert.deepEqual(await projectState(pool, project), before, 'nothing changed');
          }
        },
      ),
      { numRuns: 20, seed: 2301 },
    );
  },
);

test('tally.delete_user keeps its settings after every migration (023: work_mem, no hash or merge joins)', async (t) => {
  const pool = await twinDatabase(t);
  const { rows } = await pool.query<{ config: string[] | null }>(
    `SELECT p.proconfig AS config
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'tally' AND p.proname = 'delete_user'`,
  );
  assert.equal(rows.length, 1, 'one tally.delete_user');
  assert.deepEqual([...(rows[0].config ?? [])].sort(), [
    'enable_hashjoin=off',
    'enable_mergejoin=off',
    'work_mem=64MB',
  ]);
});
