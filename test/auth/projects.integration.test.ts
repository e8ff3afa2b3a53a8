import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createApiKey } from '../../src/auth/api-keys.ts';
import { ApiKeyStore } from '../../src/store/api-keys-store.ts';
import { startTestTally } from '../helpers/embedded-tally.ts';

const BROWSER_UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

interface Summary {
  events: number;
  page_views: number;
  unique_users: number;
}

test('a key reads and writes only its own project', { timeout: 120_000 }, async (t) => {
  const tally = await startTestTally(t);
  const post = (path: string, body: unknown, key?: string) =>
    fetch(`${tally.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) },
      body: JSON.stringify(body),
    });
  const get = async <T>(path: string, key: string): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${tally.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
    return { status: res.status, body: (await res.json()) as T };
  };

  // Before any key exists: the open `default` project.
  assert.equal(
    (await post('/v1/events', { event_id: 'd-1', type: 'page_view', user_id: 'u-default', page_url: '/d' }))
      .status,
    202,
  );

  const store = new ApiKeyStore(tally.database.pool);
  const shopW = (await createApiKey(store, 'shop', 'write')).key;
  const shopR = (await createApiKey(store, 'shop', 'read')).key;
  const blogW = (await createApiKey(store, 'blog', 'write')).key;
  const blogR = (await createApiKey(store, 'blog', 'read')).key;
  await tally.keys.refresh();

  assert.equal((await post('/v1/events', { type: 'x', user_id: 'u' })).status, 401);

  const shopEvents = [
    { event_id: 'same-id', type: 'page_view', user_id: 'u-shop', page_url: '/shop/cart' },
    { event_id: 's-2', type: 'click', user_id: 'u-shop-2', page_url: '/shop/buy' },
    { event_id: 's-3', type: 'page_view', user_id: 'u-both', page_url: '/shop/cart' },
  ];
  const blogEvents = [
    // The same event_id in another project is a different event, not a duplicate.
    { event_id: 'same-id', type: 'page_view', user_id: 'u-blog', page_url: '/blog/post' },
    { event_id: 'b-2', type: 'page_view', user_id: 'u-both', page_url: '/blog/post' },
  ];
  const shopRes = await post('/v1/events', shopEvents, shopW);
  assert.equal(shopRes.status, 202);
  assert.deepEqual(await shopRes.json(), {
    accepted: 3,
    duplicates: 0,
    dropped: 0,
    event_ids: ['same-id', 's-2', 's-3'],
  });
  const blogRes = await post('/ingest', blogEvents[0], blogW);
  assert.equal(blogRes.status, 200);
  // /v1/collect takes the browser's User-Agent (fetch's own, `node`, is a bot's: left out).
  const beacon = await fetch(`${tally.url}/v1/collect?key=${blogW}`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', 'user-agent': BROWSER_UA },
    body: JSON.stringify(blogEvents[1]),
  });
  assert.equal(beacon.status, 202);
  // Writing with a read key, or reading with a write key, is refused.
  assert.equal((await post('/v1/events', shopEvents[0], shopR)).status, 403);
  assert.equal((await get('/v1/stats/summary', shopW)).status, 403);

  const shop = await get<Summary>('/v1/stats/summary', shopR);
  assert.equal(shop.status, 200);
  assert.deepEqual(
    { events: shop.body.events, page_views: shop.body.page_views, unique_users: shop.body.unique_users },
    { events: 3, page_views: 2, unique_users: 3 },
  );
  const blog = await get<Summary>('/v1/stats/summary', blogR);
  assert.deepEqual(
    { events: blog.body.events, page_views: blog.body.page_views, unique_users: blog.body.unique_users },
    { events: 2, page_views: 2, unique_users: 2 },
  );
  const shopPages = await get<{ pages: { page_url: string }[] }>('/v1/stats/top-pages', shopR);
  assert.deepEqual(shopPages.body.pages.map((p) => p.page_url).sort(), ['/shop/cart']);
  const blogTypes = await get<{ types: { type: string; count: number }[] }>('/v1/stats/event-types', blogR);
  assert.deepEqual(blogTypes.body.types, [{ type: 'page_view', count: 2 }]);

  // Another project's user, or the `default` project's, is invisible.
  const crossUser = await get<{ events: unknown[] }>('/v1/users/u-blog/events', shopR);
  assert.equal(crossUser.status, 200);
  assert.deepEqual(crossUser.body.events, []);
  const defaultUser = await get<{ events: unknown[] }>('/v1/users/u-default/events', blogR);
  assert.deepEqual(defaultUser.body.events, []);
  const shared = await get<{ events: { page_url: string }[] }>('/v1/users/u-both/events', blogR);
  assert.deepEqual(
    shared.body.events.map((e) => e.page_url),
    ['/blog/post'],
  );
  // A NUL byte in a path or filter is a bad request, not a database error.
  for (const path of ['/v1/users/a%00b/events', '/v1/stats/timeseries?event_type=a%00b']) {
    const nul = await get<{ code: string }>(path, shopR);
    assert.equal(nul.status, 400, path);
    assert.equal(nul.body.code, 'TALLY_INVALID_QUERY');
  }
  // Naming another project in the request changes nothing: the key decides.
  const sneaky = await get<Summary>('/v1/stats/summary?project=blog', shopR);
  assert.ok(sneaky.status === 400 || (sneaky.status === 200 && sneaky.body.events === 3));

  // And in storage: every raw row is in the project its key named.
  const { rows } = await tally.database.pool.query<{ project: string; user_id: string; event_id: string }>(
    'SELECT project, user_id, event_id FROM tally.events ORDER BY project, event_id',
  );
  assert.deepEqual(
    rows.map((r) => `${r.project}/${r.event_id}/${r.user_id}`),
    [
      'blog/b-2/u-both',
      'blog/same-id/u-blog',
      'default/d-1/u-default',
      'shop/s-2/u-shop-2',
      'shop/s-3/u-both',
      'shop/same-id/u-shop',
    ],
  );

  // A revoked key stops working at the next reload.
  await store.revoke((await store.list()).find((k) => k.project === 'shop' && k.scope === 'read')!.prefix);
  await tally.keys.refresh();
  assert.equal((await get('/v1/stats/summary', shopR)).status, 401);
});
