import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createApiKey } from '../../src/auth/api-keys.ts';
import { ApiKeyStore } from '../../src/store/api-keys-store.ts';
import { TallyError } from '../../src/errors/tally-error.ts';
import { moveProjectData } from '../../src/store/project-move.ts';
import { startTestTally, type TestTally } from '../helpers/embedded-tally.ts';

const MINUTE_MS = 60_000;
const USERS = ['u0', 'u1', 'u2', 'u3', 'u4'];
const PAGES = ['/a', '/b', '/c?x=1'];

interface Sent {
  id: number;
  type: string;
  user: number;
  page: number | null;
  minutesAgo: number;
}

const eventArb = fc.record({
  // Small ids collide across a run's events: the same event_id sent twice is one event.
  id: fc.integer({ min: 0, max: 30 }),
  type: fc.constantFrom('page_view', 'click', 'purchase'),
  user: fc.integer({ min: 0, max: USERS.length - 1 }),
  page: fc.option(fc.integer({ min: 0, max: PAGES.length - 1 }), { nil: null }),
  minutesAgo: fc.integer({ min: 0, max: 150 }),
});

/** Every stats answer the API gives for a project, over a fixed range that holds all events. */
async function everyAnswer(
  tally: TestTally,
  key: string,
  range: { from: string; to: string },
  users: readonly string[],
) {
  const get = async (path: string) => {
    const res = await fetch(`${tally.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return [path, await res.json()] as const;
  };
  const r = `from=${encodeURIComponent(range.from)}&to=${encodeURIComponent(range.to)}`;
  const paths = [
    `/v1/stats/summary?${r}`,
    `/v1/stats/top-pages?${r}&limit=1000`,
    `/v1/stats/event-types?${r}&limit=1000`,
  ];
  for (const metric of ['events', 'page_views', 'unique_users']) {
    for (const interval of ['minute', 'hour', 'day']) {
      paths.push(`/v1/stats/timeseries?${r}&metric=${metric}&interval=${interval}`);
    }
  }
  paths.push(`/v1/stats/timeseries?${r}&metric=events&interval=hour&event_type=click`);
  paths.push(
    `/v1/stats/timeseries?${r}&metric=page_views&interval=minute&page_url=${encodeURIComponent(PAGES[0])}`,
  );
  for (const user of users) {
    paths.push(`/v1/users/${user}/events?limit=1000`);
    for (const page of PAGES) {
      paths.push(`/analytics/events?user_id=${user}&page_url=${encodeURIComponent(page)}`);
    }
  }
  return Object.fromEntries(await Promise.all(paths.map(get)));
}

test(
  'moving the default project: every answer of the new project equals what default answered, default answers as an empty project',
  { timeout: 300_000 },
  async (t) => {
    const tally = await startTestTally(t);
    const store = new ApiKeyStore(tally.database.pool);
    const defaultWrite = (await createApiKey(store, 'default', 'write')).key;
    const defaultRead = (await createApiKey(store, 'default', 'read')).key;
    const now = Date.now();
    const range = {
      from: new Date(Math.floor(now / MINUTE_MS) * MINUTE_MS - 3 * 60 * MINUTE_MS).toISOString(),
      to: new Date(Math.ceil(now / MINUTE_MS) * MINUTE_MS + MINUTE_MS).toISOString(),
    };
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(eventArb, { minLength: 1, maxLength: 40 }), async (sent: Sent[]) => {
        run += 1;
        // Users of this run only. TRICKY: a running process remembers the (bucket, user) rows it
        // stored (known-user-rows.ts); after a move it would skip a moved user's rows in `default`
        // (the CLI says to restart the processes), which is not what this test is about.
        const users = USERS.map((u) => `r${run}-${u}`);
        const body = sent
          .map((e) =>
            JSON.stringify({
              event_id: `r${run}-${e.id}`,
              type: e.type,
              user_id: users[e.user],
              timestamp: new Date(now - e.minutesAgo * MINUTE_MS).toISOString(),
              ...(e.page === null ? {} : { page_url: PAGES[e.page] }),
            }),
          )
          .join('\n');
        const send = async (key: string) => {
          const res = await fetch(`${tally.url}/v1/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${key}` },
            body,
          });
          assert.equal(res.status, 202, await res.text());
        };
        await send(defaultWrite);

        const target = `moved-${run}`;
        const empty = `never-used-${run}`;
        const targetRead = (await createApiKey(store, target, 'read')).key;
        const targetWrite = (await createApiKey(store, target, 'write')).key;
        const emptyRead = (await createApiKey(store, empty, 'read')).key;
        await tally.keys.refresh();
        // Read twice: the second answer comes from the cache, which the move must not let through.
        await everyAnswer(tally, defaultRead, range, users);
        const before = await everyAnswer(tally, defaultRead, range, users);
        const zero = await everyAnswer(tally, emptyRead, range, users);
        assert.notDeepEqual(before, zero, 'default held data');

        const moved = await moveProjectData(tally.database.pool, 'default', target);
        assert.equal(moved.events, new Set(sent.map((e) => e.id)).size);
        assert.deepEqual(await everyAnswer(tally, targetRead, range, users), before);
        assert.deepEqual(await everyAnswer(tally, defaultRead, range, users), zero);
        // The dedup keys moved too: the same events sent to the new project are duplicates there.
        await send(targetWrite);
        const after = await everyAnswer(tally, targetRead, range, users);
        assert.deepEqual(after, before);
        // The user numbering came along: a new user of the new project counts as one more user.
        const fresh = await fetch(`${tally.url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${targetWrite}` },
          body: JSON.stringify({ type: 'click', user_id: `new-user-${run}` }),
        });
        assert.equal(fresh.status, 202);
        const summary = (answers: Record<string, unknown>) =>
          Object.entries(answers).find(([path]) => path.startsWith('/v1/stats/summary'))![1] as {
            unique_users: number;
          };
        assert.equal(
          summary(await everyAnswer(tally, targetRead, range, users)).unique_users,
          summary(before).unique_users + 1,
        );
      }),
      { numRuns: 4 },
    );

    // Refusals, with nothing changed.
    const refused = async (from: string, to: string, code: string) => {
      const err = await moveProjectData(tally.database.pool, from, to).then(
        () => assert.fail(`moving ${from} into ${to} succeeded`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TallyError);
      assert.equal(err.code, code, err.message);
    };
    await refused('default', 'elsewhere', 'TALLY_PROJECT_EMPTY');
    await refused('moved-1', 'moved-2', 'TALLY_PROJECT_HAS_DATA');
    await refused('moved-1', 'moved-1', 'TALLY_PROJECT_HAS_DATA');
    const { rows } = await tally.database.pool.query<{ project: string; n: string }>(
      "SELECT project, sum(count) AS n FROM tally.rollup_events WHERE level = 2 AND project LIKE 'moved-%' GROUP BY project ORDER BY project",
    );
    assert.equal(rows.length, 4, 'each run moved into its own project, and no refusal moved anything');
  },
);
