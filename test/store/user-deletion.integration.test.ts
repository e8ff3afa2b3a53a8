import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type pg from 'pg';
import pino from 'pino';
import { deriveDimensions } from '../../src/event/derive.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { ReadModel } from '../../src/query/read-model.ts';
import type { TallyEvent } from '../../src/event/types.ts';
import { TallyError } from '../../src/errors/tally-error.ts';
import { BatchWriter, type BatchWriterDeps } from '../../src/store/batch-writer.ts';
import { readModelChanges } from '../../src/store/model-feed.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { moveProjectData } from '../../src/store/project-move.ts';
import { listAudit } from '../../src/store/user-audit.ts';
import { deleteUser } from '../../src/store/user-deletion.ts';
import { userHash } from '../../src/store/user-hash.ts';
import { prng } from '../helpers/oracle.ts';
import {
  busiest,
  dataVersion,
  eventsOf,
  everyAnswer,
  projectState,
  twinDatabase,
  writeAll,
} from '../helpers/twin-projects.ts';
import { generateTraffic, type Generated } from '../helpers/web-traffic.ts';

/** The `i`-th user of the traffic (u7 is a bot: web-traffic.ts makes every 20th one from u7 a bot). */
const nth = (i: number) => (all: readonly Generated[]) =>
  all.find((g) => g.event.user_id.endsWith(`-u${i}`))!.event.user_id;

const KEY = Buffer.alloc(32, 7);
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** The real write path, raw rows kept for `retentionDays` (default: for good). */
function writerOn(pool: pg.Pool, opts: { retentionDays?: number; derive?: Derive } = {}) {
  return new BatchWriter({
    pool,
    partitions: new RawPartitions(pool, opts.retentionDays),
    storeRaw: true,
    ...(opts.derive === undefined ? {} : { derive: opts.derive }),
  });
}
type Derive = NonNullable<BatchWriterDeps['derive']>;

async function tombstones(pool: pg.Pool, project: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM tally.user_tombstones WHERE project = $1',
    [project],
  );
  return rows[0].n;
}

/**
 * Generated web traffic (visits, late events that merge visits, duplicates, bots) written into
 * project A with every user and into B without `deleted`; returns the range that holds it all.
 */
async function writeTwins(pool: pg.Pool, seed: number, pickUser: (all: readonly Generated[]) => string) {
  const now = Date.now();
  const traffic = generateTraffic({ seed, users: 24, now });
  const deleted = pickUser(traffic.all);
  const writer = writerOn(pool);
  const random = prng(seed);
  for (const [project, keep] of [
    ['A', () => true],
    ['B', (b: Record<string, unknown>) => b.user_id !== deleted],
  ] as const) {
    await writeAll(writer, eventsOf(traffic.bulk.filter(keep), project, now), random, 40);
    await writeAll(writer, eventsOf(traffic.late.filter(keep), project, now), random, 40);
  }
  const range = { from: Math.floor((now - 9 * HOUR_MS) / HOUR_MS) * HOUR_MS, to: now + HOUR_MS };
  const own = traffic.all.filter((g) => g.event.user_id === deleted);
  return { deleted, range, own };
}

test(
  'twin projects: deleting a user from A leaves A storing and answering exactly what B (the same traffic without that user) does',
  { timeout: 300_000 },
  async (t) => {
    const pool = await twinDatabase(t);
    const { deleted, range, own } = await writeTwins(pool, 2201, busiest);
    assert.ok(own.length > 5, `the deleted user has events (${own.length})`);
    const before = await dataVersion(pool, 'A');
    const bState = await projectState(pool, 'B');
    const bAnswers = await everyAnswer(pool, 'B', range);
    assert.notDeepEqual(await projectState(pool, 'A'), bState, 'A holds the user before');
    // A query process's columnar read model of A, loaded before the deletion.
    const model = new ReadModel({
      pool,
      version: (project) => dataVersion(pool, project),
      cutoff: () => Number.NEGATIVE_INFINITY,
      logger: pino({ level: 'silent' }),
      metrics: createMetrics(),
    });
    t.after(() => model.stop());
    assert.equal(await model.ready('A'), true, 'the model of A loaded');
    assert.equal(await model.ready('B'), true, 'the model of B loaded');
    const layers = (await model.at('A'))!;
    const layersBefore = layers.count;

    const result = await deleteUser(pool, { project: 'A', userId: deleted, actor: 'cli:test', key: KEY });

    assert.equal(result.events, own.length, 'every raw event of the user removed');
    assert.ok(result.visits > 0, 'visits removed');
    assert.deepEqual(result.inexact_days, []);
    assert.equal(result.version, before + 1, 'one version bump');
    assert.equal(await dataVersion(pool, 'A'), before + 1);
    assert.deepEqual(await projectState(pool, 'A'), bState, 'stored state of A = of B');
    assert.deepEqual(await everyAnswer(pool, 'A', range), bAnswers, 'every answer of A = of B');
    // The read model catches up through the deletion's feed row: the user retired, no reload.
    assert.equal(await model.at('A', Number.POSITIVE_INFINITY), layers, 'caught up at the new version');
    assert.equal(layers.count, layersBefore + 1, 'by one delta layer');
    // Against B's model: the model gives counts as numbers where the scans give int8 text (the
    // REST schemas serialise both alike).
    assert.deepEqual(
      await everyAnswer(pool, 'A', range, model),
      await everyAnswer(pool, 'B', range, model),
      "every answer of A's read model = of B's",
    );

    // The change feed: one row for the one bump, naming the user, so the interval is complete.
    assert.deepEqual(await readModelChanges(pool, 'A', before, before + 1), {
      complete: true,
      users: [deleted],
    });
    const { rows } = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM tally.model_changes WHERE project = 'A' AND $1 = ANY (user_ids) AND version <= $2",
      [deleted, before],
    );
    assert.equal(rows[0].n, 0, 'the user is gone from the older feed rows');

    assert.equal(await tombstones(pool, 'A'), 1);
    const audit = await listAudit(pool, { project: 'A', limit: 10 });
    assert.equal(audit.length, 1);
    assert.equal(audit[0].outcome, 'ok');
    assert.equal(audit[0].events, own.length);
    assert.equal(audit[0].user_hash, userHash(KEY, deleted).toString('hex'));
    assert.equal(audit[0].actor, 'cli:test');
  },
);

test('an unknown user: nothing removed, no version bump, a tombstone; a second deletion is the same', async (t) => {
  const pool = await twinDatabase(t);
  const { range } = await writeTwins(pool, 2202, nth(0));
  const state = await projectState(pool, 'A');
  const answers = await everyAnswer(pool, 'A', range);
  const version = await dataVersion(pool, 'A');
  for (const attempt of [1, 2]) {
    const result = await deleteUser(pool, {
      project: 'A',
      userId: 'never-seen',
      actor: 'cli:test',
      key: KEY,
    });
    assert.deepEqual(
      result,
      {
        project: 'A',
        user_id: 'never-seen',
        events: 0,
        visits: 0,
        dead_letters: 0,
        version: null,
        inexact_days: [],
      },
      `attempt ${attempt}`,
    );
    assert.equal(await tombstones(pool, 'A'), 1, 'one tombstone');
  }
  assert.equal(await dataVersion(pool, 'A'), version);
  assert.deepEqual(await projectState(pool, 'A'), state);
  assert.deepEqual(await everyAnswer(pool, 'A', range), answers);
  assert.deepEqual(
    (await listAudit(pool, { project: 'A', limit: 10 })).map((a) => [a.outcome, a.events]),
    [
      ['ok', 0],
      ['ok', 0],
    ],
  );
});

test('a bot user (raw rows and visits, in no rollup) deleted, then deleted again: the second removes nothing', async (t) => {
  const pool = await twinDatabase(t);
  const { deleted, own } = await writeTwins(pool, 2203, nth(7));
  assert.ok(own.length > 0 && own.every((g) => g.event.is_bot), 'u7 is a bot');
  const first = await deleteUser(pool, { project: 'A', userId: deleted, actor: 'cli:test', key: KEY });
  assert.equal(first.events, own.length);
  assert.ok(first.visits > 0);
  assert.deepEqual(await projectState(pool, 'A'), await projectState(pool, 'B'));
  const state = await projectState(pool, 'A');
  const second = await deleteUser(pool, { project: 'A', userId: deleted, actor: 'cli:test', key: KEY });
  assert.deepEqual(second, { ...first, events: 0, visits: 0, version: null });
  assert.equal(await dataVersion(pool, 'A'), first.version);
  assert.deepEqual(await projectState(pool, 'A'), state);
  assert.equal(await tombstones(pool, 'A'), 1);
});

test(
  'a deletion that fails half-way (at the visits, after the rollups) changes nothing and is audited as failed',
  { timeout: 300_000 },
  async (t) => {
    const pool = await twinDatabase(t);
    const { deleted, range } = await writeTwins(pool, 2204, nth(2));
    const state = await projectState(pool, 'A');
    const answers = await everyAnswer(pool, 'A', range);
    const version = await dataVersion(pool, 'A');
    // Fault injection: the visits are the last table the deletion writes.
    await pool.query(`
      CREATE FUNCTION public.fail_delete() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'injected: failure deleting visits'; END $$;
      CREATE TRIGGER fail_delete BEFORE DELETE ON tally.sessions FOR EACH ROW EXECUTE FUNCTION public.fail_delete();`);

    const err = await deleteUser(pool, { project: 'A', userId: deleted, actor: 'cli:test', key: KEY }).then(
      () => assert.fail('the deletion must fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof TallyError, String(err));
    assert.equal(err.code, 'TALLY_DB_ERROR');
    assert.match(err.message, /injected/);

    assert.deepEqual(await projectState(pool, 'A'), state, 'every stored row as before');
    assert.deepEqual(await everyAnswer(pool, 'A', range), answers, 'every answer as before');
    assert.equal(await dataVersion(pool, 'A'), version, 'no version bump');
    assert.equal(await tombstones(pool, 'A'), 0, 'no tombstone');
    const audit = await listAudit(pool, { project: 'A', limit: 10 });
    assert.deepEqual(
      audit.map((a) => [a.outcome, a.events, a.user_hash]),
      [['failed', 0, userHash(KEY, deleted).toString('hex')]],
    );
    assert.deepEqual((audit[0].detail as { code: string }).code, 'TALLY_DB_ERROR');

    await pool.query('DROP TRIGGER fail_delete ON tally.sessions');
    await deleteUser(pool, { project: 'A', userId: deleted, actor: 'cli:test', key: KEY });
    assert.deepEqual(await projectState(pool, 'A'), await projectState(pool, 'B'), 'then it goes through');
  },
);

test(
  'counts older than the raw window cannot be subtracted: refused with TALLY_DELETE_INEXACT naming the days, unless allowInexact',
  { timeout: 300_000 },
  async (t) => {
    const pool = await twinDatabase(t);
    const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
    const old = today - 10 * DAY_MS + 5 * HOUR_MS;
    const event = (id: string, user: string, ts: number): TallyEvent =>
      eventsOf(
        [{ event_id: id, type: 'page_view', user_id: user, timestamp: ts, page_url: '/a' }],
        'A',
        ts,
      )[0];
    // Two days of raw rows kept: the old events are counted, their raw rows never stored.
    const writer = writerOn(pool, { retentionDays: 2 });
    await writer.write({
      events: [
        event('o1', 'u', old),
        event('o2', 'v', old),
        event('n1', 'u', today + 60_000),
        event('n2', 'v', today),
      ],
    });
    const state = await projectState(pool, 'A');

    const err = await deleteUser(pool, { project: 'A', userId: 'u', actor: 'cli:test', key: KEY }).then(
      () => assert.fail('an inexact deletion must be refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof TallyError, String(err));
    assert.equal(err.code, 'TALLY_DELETE_INEXACT');
    assert.equal(err.statusCode, 409);
    assert.match(err.message, new RegExp(new Date(old).toISOString().slice(0, 10)));
    assert.deepEqual(await projectState(pool, 'A'), state, 'nothing deleted');
    assert.equal(await tombstones(pool, 'A'), 0);

    const result = await deleteUser(pool, {
      project: 'A',
      userId: 'u',
      actor: 'cli:test',
      key: KEY,
      allowInexact: true,
    });
    assert.equal(result.events, 1, 'the one raw row');
    assert.deepEqual(result.inexact_days, [new Date(old).toISOString().slice(0, 10)]);
    const after = await projectState(pool, 'A');
    assert.deepEqual(after.raw, [`n2|page_view|v|${today}|/a`]);
    // The user sets are exact whatever the raw window: only v is left, also on the old day.
    assert.ok(
      after.users.every((u) => u.endsWith('|v')),
      after.users.join(' '),
    );
    assert.equal(after.userBitCount, 6);
    // Today's counts are exact; the old day still counts u's event: over-counted, as reported.
    assert.ok(after.events.includes(`2|${today}|page_view|1`), after.events.join(' '));
    assert.ok(
      after.events.includes(`2|${Math.floor(old / DAY_MS) * DAY_MS}|page_view|2`),
      after.events.join(' '),
    );
    const audit = await listAudit(pool, { project: 'A', limit: 10 });
    assert.deepEqual(
      audit.map((a) => [a.outcome, (a.detail as { inexact_days?: string[] } | null)?.inexact_days]),
      [
        ['ok', result.inexact_days],
        ['failed', undefined],
      ],
    );
  },
);

const BOT_UA = 'TestBot/1.0';
const derive = (e: TallyEvent) => ({ ...deriveDimensions(e), bot: e.userAgent === BOT_UA });

/** Few users, minutes, pages and ids, so that rows are shared and some are emptied by the deletion. */
const item = fc.record({
  user: fc.constantFrom('u1', 'u2', 'u3', 'u4'),
  type: fc.constantFrom('page_view', 'click'),
  minute: fc.integer({ min: 0, max: 180 }),
  page: fc.option(fc.constantFrom('/a', '/b', '/c'), { nil: null }),
  session: fc.option(fc.constantFrom('s1', 's2'), { nil: null }),
  bot: fc.boolean(),
  // Sent twice (the same body): a duplicate. Two different events never share an id here; one
  // that did would be the documented limit (design-22 §1: an event of another user dropped as a
  // duplicate of the deleted user's id cannot come back).
  resent: fc.boolean(),
});

test(
  'property: after deleting any user, A stores and answers what its twin written without that user does',
  { timeout: 600_000 },
  async (t) => {
    const pool = await twinDatabase(t);
    const writer = writerOn(pool, { derive });
    // Three hours across the midnight before yesterday's end: minutes, hours and two days.
    const base = Math.floor(Date.now() / DAY_MS) * DAY_MS - DAY_MS - 90 * 60_000;
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(item, { minLength: 1, maxLength: 40 }),
        fc.constantFrom('u1', 'u2', 'u3', 'u4'),
        fc.integer({ min: 1, max: 10 }),
        async (items, deleted, batch) => {
          run += 1;
          const [a, b] = [`A${run}`, `B${run}`];
          const bodies = items.flatMap((x, i) => {
            const body = {
              event_id: `e${i}`,
              type: x.type,
              user_id: x.user,
              timestamp: base + x.minute * 60_000 + i,
              user_agent: x.bot ? BOT_UA : 'Mozilla/5.0',
              ...(x.page === null ? {} : { page_url: x.page }),
              ...(x.session === null ? {} : { session_id: x.session }),
            };
            return x.resent ? [body, body] : [body];
          });
          const random = prng(run);
          const now = Date.now();
          await writeAll(writer, eventsOf(bodies, a, now), random, batch);
          await writeAll(
            writer,
            eventsOf(
              bodies.filter((x) => x.user_id !== deleted),
              b,
              now,
            ),
            random,
            batch,
          );
          await deleteUser(pool, { project: a, userId: deleted, actor: 'cli:test', key: KEY });
          assert.deepEqual(await projectState(pool, a), await projectState(pool, b));
          const range = { from: base - DAY_MS, to: base + 2 * DAY_MS };
          assert.deepEqual(await everyAnswer(pool, a, range), await everyAnswer(pool, b, range));
        },
      ),
      { numRuns: 25, seed: 2205 },
    );
  },
);

test('tally projects move takes the tombstones and the audit along', async (t) => {
  const pool = await twinDatabase(t);
  const { deleted } = await writeTwins(pool, 2206, nth(1));
  await deleteUser(pool, { project: 'A', userId: deleted, actor: 'cli:test', key: KEY });
  const moved = await moveProjectData(pool, 'A', 'C');
  assert.equal(moved.rows.user_tombstones, 1);
  assert.equal(moved.rows.user_audit, 1);
  assert.equal(await tombstones(pool, 'A'), 0);
  assert.equal(await tombstones(pool, 'C'), 1);
  assert.deepEqual(
    (await listAudit(pool, { project: 'C', limit: 10 })).map((a) => a.user_hash),
    [userHash(KEY, deleted).toString('hex')],
  );
  // Deleting the user again in the moved project finds its tombstone: still one.
  await deleteUser(pool, { project: 'C', userId: deleted, actor: 'cli:test', key: KEY });
  assert.equal(await tombstones(pool, 'C'), 1);
});
