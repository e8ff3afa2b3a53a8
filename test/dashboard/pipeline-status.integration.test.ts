import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getJson, postJson, startTestTally } from '../helpers/embedded-tally.ts';

interface Pipeline {
  mode: string;
  consumer_lag: unknown;
  dead_letters: { total: number; unreplayed: number; last_at: string | null };
  last_commit: string | null;
  live: { committed: number; commits: number };
}

test('GET /v1/pipeline: dead letters of the project (and unattributed ones), last commit', async (t) => {
  const tally = await startTestTally(t);
  const empty = await getJson<Pipeline>(`${tally.url}/v1/pipeline`);
  assert.equal(empty.status, 200);
  assert.deepEqual(
    { ...empty.body, live: undefined },
    {
      mode: 'embedded',
      consumer_lag: null,
      dead_letters: { total: 0, unreplayed: 0, last_at: null },
      last_commit: null,
      live: undefined,
    },
  );

  await tally.database.pool.query(
    `INSERT INTO tally.dead_letters (project, reason, source, received_at, replayed_at) VALUES
       ('default', 'invalid_event', 'test', '2026-01-02T03:04:05Z', NULL),
       ('default', 'invalid_event', 'test', '2026-01-01T00:00:00Z', now()),
       (NULL, 'unparseable', 'test', '2026-01-01T00:00:00Z', NULL),
       ('other', 'invalid_event', 'test', '2026-02-01T00:00:00Z', NULL)`,
  );
  const before = Date.now();
  assert.equal((await postJson(`${tally.url}/v1/events`, { type: 'click', user_id: 'u' })).status, 202);
  const { body } = await getJson<Pipeline>(`${tally.url}/v1/pipeline`);
  assert.deepEqual(body.dead_letters, { total: 3, unreplayed: 2, last_at: '2026-01-02T03:04:05.000Z' });
  assert.ok(
    body.last_commit !== null && Date.parse(body.last_commit) >= before - 5_000,
    String(body.last_commit),
  );
  assert.equal(body.live.committed, 1);
  assert.equal(body.live.commits, 1);
});
