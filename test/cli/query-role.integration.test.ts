import assert from 'node:assert/strict';
import { waitFor } from '../helpers/poll.ts';
import { test } from 'node:test';
import { findFreePort } from '../../src/util/free-port.ts';
import { spawnTally } from '../helpers/child-tally.ts';
import { getJson, postJson, startTestTally } from '../helpers/embedded-tally.ts';
import { analyticsClient } from '../helpers/grpc-client.ts';
import { createApiKey } from '../../src/auth/api-keys.ts';
import { ApiKeyStore } from '../../src/store/api-keys-store.ts';

test('tally query: REST and gRPC on their own ports over an existing database; SIGTERM exits 0', async (t) => {
  const writer = await startTestTally(t);
  const databaseUrl = (writer.database.pool.options as { connectionString: string }).connectionString;
  const [restPort, grpcPort] = [await findFreePort(), await findFreePort()];
  const role = await spawnTally(
    ['query'],
    { DATABASE_URL: databaseUrl, TALLY_QUERY_PORT: String(restPort), TALLY_GRPC_PORT: String(grpcPort) },
    restPort,
  );
  t.after(() => {
    if (role.child.exitCode === null) role.child.kill('SIGKILL');
  });
  const event = { event_id: 'r-1', type: 'page_view', user_id: 'u', page_url: 'https://a.test/' };
  assert.equal((await postJson(`${writer.url}/v1/events`, event)).status, 202);

  const rest = await getJson<{ count: number }>(
    `${role.url}/analytics/events?user_id=u&page_url=https://a.test/`,
  );
  assert.deepEqual(rest, { status: 200, body: { user_id: 'u', page_url: 'https://a.test/', count: 1 } });
  // Ready once its read model has loaded (a moment: `degraded` until then).
  await waitFor(
    'the query role to be ready',
    async () => (await getJson<{ status: string }>(`${role.url}/ready`)).body.status === 'ready',
  );
  const client = analyticsClient(grpcPort);
  t.after(() => client.close());
  assert.equal(await client.health(''), 'SERVING');
  assert.equal((await client.call('GetEventCount', { user_id: 'u', page_url: 'https://a.test/' })).count, 1);
  // Ingest is not this role's job.
  assert.equal((await postJson(`${role.url}/v1/events`, event)).status, 404);

  // It deletes users for admin keys (never while no key exists), and answers without them at once.
  const deleteU = (key?: string) =>
    fetch(`${role.url}/v1/users/u?project=default`, {
      method: 'DELETE',
      headers: key === undefined ? {} : { 'x-api-key': key },
    });
  assert.equal((await deleteU()).status, 403);
  const store = new ApiKeyStore(writer.database.pool);
  const readKey = (await createApiKey(store, 'default', 'read')).key;
  const adminKey = (await createApiKey(store, 'default', 'admin')).key;
  const count = async () => {
    const res = await fetch(`${role.url}/analytics/events?user_id=u&page_url=https://a.test/`, {
      headers: { 'x-api-key': readKey },
    });
    return ((await res.json()) as { count: number }).count;
  };
  await waitFor(
    'the query role to load the new keys',
    async () => (await fetch(`${role.url}/v1/stats/summary`)).status === 401,
  );
  assert.equal(await count(), 1);
  const deleted = await deleteU(adminKey);
  const body = (await deleted.json()) as { events: number };
  assert.equal(deleted.status, 200, JSON.stringify(body));
  assert.equal(body.events, 1);
  assert.equal(await count(), 0);

  role.child.kill('SIGTERM');
  assert.deepEqual(await role.exited, { code: 0, signal: null });
  assert.match(role.output(), /Tally query is up/);
});
