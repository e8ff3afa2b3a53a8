import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rebuildSessions } from '../../src/store/sessions-store.ts';
import { getJson, postJson, startTestTally } from '../helpers/embedded-tally.ts';

const MINUTE = 60_000;

/**
 * The stored session timeout changes under a running Tally (another process rebuilt the visits
 * with another TALLY_SESSION_TIMEOUT_MIN): its batches are refused with a coded 503 naming the
 * variable and both values, nothing is stored, and the same request sent again once the timeouts
 * agree is stored whole.
 */
test('a session-timeout mismatch in a batch: 503 TALLY_SESSION_TIMEOUT_MISMATCH, nothing stored, the retry stores all', async (t) => {
  const tally = await startTestTally(t, { TALLY_SESSION_TIMEOUT_MIN: '30' });
  const pool = tally.database.pool;
  const ts = Date.now() - MINUTE;
  const send = (ids: string[]) =>
    postJson(
      `${tally.url}/v1/events`,
      ids.map((id, i) => ({ event_id: id, type: 'page_view', user_id: 'u', ts: ts + i })),
    );
  const stored = async () =>
    Number(
      (await pool.query<{ n: string }>("SELECT count(*) AS n FROM tally.events WHERE project = 'default'"))
        .rows[0].n,
    );

  assert.equal((await send(['first'])).status, 202);
  // Another process rebuilds the visits with 10 min (this one started with 30).
  await rebuildSessions(pool, 'default', 10 * MINUTE);

  const refused = await send(['a', 'b']);
  assert.equal(refused.status, 503, JSON.stringify(refused.body));
  assert.equal(refused.body.code, 'TALLY_SESSION_TIMEOUT_MISMATCH');
  assert.equal(refused.body.error, 'Service Unavailable');
  assert.match(
    String(refused.body.message),
    /^TALLY_SESSION_TIMEOUT_MIN: the visits of project default were built with a session timeout of 10 min, and this process uses 30 min: run `tally sessions rebuild`.*nothing of the batch was stored$/,
  );
  assert.ok(refused.headers.get('retry-after'), 'a 503 says when to retry');
  assert.equal(await stored(), 1, 'nothing of the refused batch is stored');

  // The operator rebuilds with this process's timeout; the client's retry of the same request goes in whole.
  await rebuildSessions(pool, 'default', 30 * MINUTE);
  const retried = await send(['a', 'b']);
  assert.equal(retried.status, 202, JSON.stringify(retried.body));
  assert.equal(retried.body.accepted, 2);
  assert.equal(await stored(), 3);
  const summary = await getJson(`${tally.url}/v1/stats/summary?from=${new Date(ts - MINUTE).toISOString()}`);
  assert.equal(summary.body.events, 3);
  assert.equal(summary.body.visits, 1);
});
