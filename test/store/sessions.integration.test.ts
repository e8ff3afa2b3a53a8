import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { test, type TestContext } from 'node:test';
import fc from 'fast-check';
import pg from 'pg';
import { pino } from 'pino';
import { openDatabase } from '../../src/store/database.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { moveProjectData } from '../../src/store/project-move.ts';
import { rebuildSessions, refreshSessions } from '../../src/store/sessions-store.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import {
  DIMENSIONS,
  insertRaw,
  sessionize,
  storedEvents,
  storedVisits,
  type SessionizerEvent,
} from '../helpers/sessionizer.ts';

const DAY = 86_400_000;
const MINUTE = 60_000;
const TIMEOUT = 10 * MINUTE;
// Yesterday 01:00 UTC: every generated event falls on yesterday or today.
const BASE = Math.floor(Date.now() / DAY) * DAY - DAY + 60 * MINUTE;

let projects = 0;
const newProject = () => `sessions-${process.pid}-${projects++}`;

function event(project: string, fields: Partial<SessionizerEvent> & { eventId: string; ts: number }) {
  const e = {
    project,
    userId: 'u',
    type: 'page_view',
    sessionId: null,
    path: `/${fields.eventId}`,
    isBot: false,
    ...fields,
  } as SessionizerEvent;
  for (const d of DIMENSIONS) e[d] ??= `${d}-${fields.eventId}`;
  return e;
}

/** One batch the way a writer stores it: raw rows of the fresh events, then the refresh, one transaction. */
async function writeBatch(
  client: pg.PoolClient,
  events: readonly SessionizerEvent[],
  rawCutoff?: number,
): Promise<void> {
  await client.query('BEGIN');
  try {
    const fresh = await insertRaw(client, events);
    await refreshSessions(client, fresh, TIMEOUT, rawCutoff);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

async function assertExact(client: pg.PoolClient, project: string) {
  const expected = sessionize(await storedEvents(client, project), TIMEOUT);
  assert.deepEqual(await storedVisits(client, project), expected);
  return expected;
}

// Gaps around the timeout (and equal times, to exercise the event_id tie-break).
const GAPS = [0, 1, 5 * MINUTE, TIMEOUT - 1, TIMEOUT, TIMEOUT + 1, 3 * TIMEOUT];
// Ids whose "C" order differs from JavaScript's (U+1F600 against U+E000), duplicates among them.
const ID_PREFIXES = ['a', 'B', 'é', '\uE000', '\u{1F600}'];

const eventArb = fc.record({
  user: fc.integer({ min: 0, max: 1 }),
  gap: fc.constantFrom(...GAPS),
  type: fc.constantFrom('page_view', 'page_view', 'click', 'signup'),
  session: fc.option(fc.constantFrom('s1', 's2'), { freq: 4, nil: null }),
  id: fc.tuple(fc.constantFrom(...ID_PREFIXES), fc.integer({ min: 0, max: 30 })),
  path: fc.option(fc.constantFrom('/', '/a', '/b'), { freq: 6, nil: null }),
  dim: fc.option(fc.constantFrom('x', 'y'), { freq: 4, nil: null }),
  bot: fc.boolean(),
  batch: fc.integer({ min: 0, max: 5 }),
  order: fc.nat(),
});

test(
  'tally.refresh_sessions keeps tally.sessions equal to the reference sessionizer',
  { timeout: 600_000 },
  async (t) => {
    const db = await startTestPostgres(t);
    await new RawPartitions(db.pool, undefined).ensure([0, 1, 2].map((d) => BASE - (BASE % DAY) + d * DAY));
    // Released by the test itself: the database's own cleanup (pool.end) waits for it.
    const client = await db.pool.connect();
    try {
      await cases(t, db.pool, client);
      await t.test('tally sessions rebuild [--project P] recomputes lost or wrong visits', async () => {
        const p = newProject();
        await writeBatch(client, [
          event(p, { eventId: 'a', ts: BASE }),
          event(p, { eventId: 'b', ts: BASE + TIMEOUT }),
        ]);
        const expected = await assertExact(client, p);
        const env = {
          ...process.env,
          DATABASE_URL: db.connectionString,
          TALLY_SESSION_TIMEOUT_MIN: String(TIMEOUT / MINUTE),
        };
        const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
        await client.query('DELETE FROM tally.sessions WHERE project = $1', [p]);
        const one = await promisify(execFile)(
          process.execPath,
          [main, 'sessions', 'rebuild', '--project', p],
          { env },
        );
        assert.equal(one.stdout, `rebuilt the visits of project ${p}: 1 visits\n`);
        assert.deepEqual(await storedVisits(client, p), expected);
        // By default every project the writers ever versioned (tally.data_versions).
        await client.query(`UPDATE tally.sessions SET events = 7 WHERE project = $1`, [p]);
        await client.query(
          `INSERT INTO tally.data_versions (project, version) VALUES ($1, 1) ON CONFLICT DO NOTHING`,
          [p],
        );
        const all = await promisify(execFile)(process.execPath, [main, 'sessions', 'rebuild'], { env });
        assert.match(all.stdout, new RegExp(`^rebuilt the visits of project ${p}: 1 visits$`, 'm'));
        assert.deepEqual(await storedVisits(client, p), expected);
      });
      await t.test('ties broken in "C" order on a database whose own collation is not C (ICU)', async () => {
        await db.pool.query(
          `CREATE DATABASE sessions_icu TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C'`,
        );
        const url = new URL(db.connectionString);
        url.pathname = '/sessions_icu';
        const options = { poolSize: 2, applicationName: 'test-icu', logger: pino({ level: 'silent' }) };
        await (await openDatabase({ kind: 'external', connectionString: url.href }, options)).stop();
        const icu = new pg.Pool({ connectionString: url.href, max: 2 });
        try {
          await new RawPartitions(icu, undefined).ensure([BASE - (BASE % DAY)]);
          const icuClient = await icu.connect();
          try {
            const p = newProject();
            // "C": B < Z < a < é; ICU's root order: a < B < é < Z.
            await writeBatch(
              icuClient,
              ['a', 'é', 'Z', 'B'].map((id) => event(p, { eventId: id, ts: BASE })),
            );
            const [visit] = await assertExact(icuClient, p);
            assert.deepEqual([visit.entryPage, visit.exitPage, visit.hostname], ['/B', '/é', 'hostname-B']);
          } finally {
            icuClient.release();
          }
        } finally {
          await icu.end();
        }
      });
    } finally {
      client.release();
    }
  },
);

async function cases(t: TestContext, dbPool: pg.Pool, client: pg.PoolClient) {
  await t.test('random events, duplicates and batch splits, in random order (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(eventArb, { minLength: 1, maxLength: 40, size: 'max' }),
        fc.boolean(),
        async (drawn, live) => {
          const project = newProject();
          const clock = [BASE, BASE];
          const events = drawn.map((d) => {
            clock[d.user] += d.gap;
            const e = event(project, {
              userId: `user-${d.user}`,
              ts: clock[d.user],
              type: d.type,
              sessionId: d.session,
              eventId: `${d.id[0]}${d.id[1]}`,
              path: d.path,
              isBot: d.bot,
            });
            for (const dim of DIMENSIONS) e[dim] = d.dim;
            return { e, batch: d.batch, order: d.order };
          });
          if (live) {
            // Live traffic: the batches in time order, each user's next events after its last ones
            // (migration 031 extends the visits in place), the order within a batch still drawn.
            const byTime = [...events].sort((x, y) => x.e.ts - y.e.ts);
            byTime.forEach((x, rank) => (x.batch = Math.floor((rank * 6) / byTime.length)));
          }
          for (let b = 0; b <= 5; b++) {
            const batch = events.filter((x) => x.batch === b).sort((x, y) => x.order - y.order);
            await writeBatch(
              client,
              batch.map((x) => x.e),
            );
          }
          const expected = await assertExact(client, project);
          // A rebuild from scratch gives the same visits.
          assert.equal(await rebuildSessions(dbPool, project, TIMEOUT), expected.length);
          assert.deepEqual(await storedVisits(client, project), expected);
        },
      ),
      { numRuns: 80 },
    );
  });

  const visitTimes = async (project: string) =>
    (await assertExact(client, project)).map((v) => [v.sessionKey, v.startedAt - BASE, v.endedAt - BASE]);

  await t.test("a user's next events extend its visit in place, or start one (migration 031)", async () => {
    const p = newProject();
    // A visit without page views, then two events after it: the first page view of the batch
    // becomes its entry page, the last its exit page.
    await writeBatch(client, [event(p, { eventId: 'a', ts: BASE, type: 'click', isBot: true })]);
    await writeBatch(client, [
      event(p, { eventId: 'c', ts: BASE + 2 * MINUTE }),
      event(p, { eventId: 'b', ts: BASE + MINUTE }),
      event(p, { eventId: 'd', ts: BASE + 2 * MINUTE, type: 'click' }),
    ]);
    // Then more than the timeout later: a new visit of those events, its first one's dimensions.
    await writeBatch(client, [
      event(p, { eventId: 'f', ts: BASE + 2 * MINUTE + TIMEOUT + 2, type: 'click' }),
      event(p, { eventId: 'e', ts: BASE + 2 * MINUTE + TIMEOUT + 1, type: 'signup' }),
    ]);
    assert.deepEqual(await visitTimes(p), [
      ['', 0, 2 * MINUTE],
      ['', 2 * MINUTE + TIMEOUT + 1, 2 * MINUTE + TIMEOUT + 2],
    ]);
    const [first, second] = await storedVisits(client, p);
    assert.deepEqual(
      [first.events, first.pageViews, first.entryPage, first.exitPage, first.isBot, first.hostname],
      [4, 2, '/b', '/c', true, 'hostname-a'],
    );
    assert.deepEqual(
      [second.events, second.pageViews, second.entryPage, second.firstEventId, second.hostname],
      [2, 0, null, 'e', 'hostname-e'],
    );
  });

  await t.test('a late event extends a visit', async () => {
    const p = newProject();
    await writeBatch(client, [
      event(p, { eventId: 'a', ts: BASE }),
      event(p, { eventId: 'b', ts: BASE + MINUTE }),
    ]);
    await writeBatch(client, [event(p, { eventId: 'c', ts: BASE + MINUTE + TIMEOUT })]);
    await writeBatch(client, [event(p, { eventId: 'z', ts: BASE - TIMEOUT })]);
    assert.deepEqual(await visitTimes(p), [['', -TIMEOUT, MINUTE + TIMEOUT]]);
    const [visit] = await storedVisits(client, p);
    assert.equal(visit.entryPage, '/z');
    assert.equal(visit.exitPage, '/c');
    assert.equal(visit.hostname, 'hostname-z', 'the dimensions of the (new) first event');
  });

  await t.test('a late event starts a visit between two others', async () => {
    const p = newProject();
    await writeBatch(client, [
      event(p, { eventId: 'a', ts: BASE }),
      event(p, { eventId: 'c', ts: BASE + 4 * TIMEOUT }),
    ]);
    await writeBatch(client, [event(p, { eventId: 'b', ts: BASE + 2 * TIMEOUT })]);
    assert.deepEqual(await visitTimes(p), [
      ['', 0, 0],
      ['', 2 * TIMEOUT, 2 * TIMEOUT],
      ['', 4 * TIMEOUT, 4 * TIMEOUT],
    ]);
  });

  await t.test('a late event merges two visits into one, and one past the timeout does not', async () => {
    const p = newProject();
    await writeBatch(client, [
      event(p, { eventId: 'a', ts: BASE }),
      event(p, { eventId: 'c', ts: BASE + 2 * TIMEOUT }),
      event(p, { eventId: 'e', ts: BASE + 10 * TIMEOUT }),
      event(p, { eventId: 'g', ts: BASE + 12 * TIMEOUT + 1 }),
    ]);
    assert.equal((await visitTimes(p)).length, 4);
    await writeBatch(client, [
      event(p, { eventId: 'b', ts: BASE + TIMEOUT }),
      event(p, { eventId: 'f', ts: BASE + 11 * TIMEOUT }),
    ]);
    assert.deepEqual(await visitTimes(p), [
      ['', 0, 2 * TIMEOUT],
      ['', 10 * TIMEOUT, 11 * TIMEOUT],
      ['', 12 * TIMEOUT + 1, 12 * TIMEOUT + 1],
    ]);
    const [merged] = await storedVisits(client, p);
    assert.equal(merged.events, 3);
    assert.equal(merged.pageViews, 3);
  });

  await t.test('an explicit session_id spans a gap longer than the timeout', async () => {
    const p = newProject();
    await writeBatch(client, [
      event(p, { eventId: 'a', ts: BASE, sessionId: 's' }),
      event(p, { eventId: 'x', ts: BASE + MINUTE }),
    ]);
    await writeBatch(client, [
      event(p, { eventId: 'b', ts: BASE + 5 * TIMEOUT, sessionId: 's', isBot: true }),
    ]);
    await writeBatch(client, [
      event(p, { eventId: 'c', ts: BASE - 5 * TIMEOUT, sessionId: 's', type: 'click' }),
    ]);
    assert.deepEqual(await visitTimes(p), [
      ['', MINUTE, MINUTE],
      ['s', -5 * TIMEOUT, 5 * TIMEOUT],
    ]);
    const explicit = (await storedVisits(client, p))[1];
    assert.deepEqual(
      [explicit.events, explicit.pageViews, explicit.entryPage, explicit.isBot, explicit.hostname],
      [3, 2, '/a', true, 'hostname-c'],
    );
  });

  await t.test('ties on ts: the first and last event by event_id in code point order', async () => {
    const p = newProject();
    // JavaScript's '<' puts U+1F600 (a surrogate pair, 0xD83D…) before U+E000; "C" puts it after.
    await writeBatch(client, [
      event(p, { eventId: '\u{1F600}', ts: BASE }),
      event(p, { eventId: '\uE000', ts: BASE }),
    ]);
    const [visit] = await storedVisits(client, p);
    assert.deepEqual([visit.entryPage, visit.exitPage], ['/\uE000', '/\u{1F600}']);
  });

  await t.test('visits move with their project (tally projects move)', async () => {
    const from = newProject();
    const to = newProject();
    await writeBatch(client, [
      event(from, { eventId: 'a', ts: BASE }),
      event(from, { eventId: 'b', ts: BASE + MINUTE }),
    ]);
    const moved = await moveProjectData(dbPool, from, to);
    assert.equal(moved.rows.sessions, 1);
    assert.deepEqual(await storedVisits(client, from), []);
    assert.deepEqual((await assertExact(client, to)).length, 1);
  });

  await t.test(
    'a visit whose start retention dropped is recomputed from the rows still stored, however batched',
    async () => {
      const visitsAfter = async (second: SessionizerEvent[]) => {
        const p = newProject();
        await writeBatch(client, [
          event(p, { eventId: 'a', ts: BASE }),
          event(p, { eventId: 'b', ts: BASE + MINUTE }),
        ]);
        // As the retention would: the raw row of the visit's start is gone, the visit stays, and
        // the writer's raw cutoff has passed it.
        await client.query(`DELETE FROM tally.events WHERE project = $1 AND event_id = 'a'`, [p]);
        await writeBatch(
          client,
          second.map((e) => ({ ...e, project: p })),
          BASE + 1,
        );
        const visits = await storedVisits(client, p);
        assert.equal(await rebuildSessions(dbPool, p, TIMEOUT), visits.length);
        assert.deepEqual(await storedVisits(client, p), visits, 'a rebuild gives the same visits');
        return visits.map((v) => [v.startedAt - BASE, v.events, v.entryPage]);
      };
      const c = event('', { eventId: 'c', ts: BASE + 2 * MINUTE });
      // c alone (the append case but for the missing start), and c beside a far event (recomputed).
      const alone = await visitsAfter([c]);
      assert.deepEqual(alone, [[MINUTE, 2, '/b']]);
      const beside = await visitsAfter([c, event('', { eventId: 'far', ts: BASE + 10 * TIMEOUT })]);
      assert.deepEqual(beside.slice(0, 1), alone);
    },
  );

  await t.test('a rebuild keeps the visits that ended before the oldest raw row', async () => {
    const p = newProject();
    await writeBatch(client, [
      event(p, { eventId: 'old', ts: BASE }),
      event(p, { eventId: 'new', ts: BASE + DAY }),
    ]);
    // As the retention would: the raw row is gone, its visit stays.
    await client.query(`DELETE FROM tally.events WHERE project = $1 AND event_id = 'old'`, [p]);
    assert.equal(await rebuildSessions(dbPool, p, TIMEOUT), 1);
    assert.deepEqual(
      (await storedVisits(client, p)).map((v) => v.startedAt - BASE),
      [0, DAY],
    );
  });
}
