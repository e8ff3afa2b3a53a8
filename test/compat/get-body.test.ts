import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import Fastify from 'fastify';
import { readGetBody } from '../../src/compat/get-body.ts';
import type { QueryService } from '../../src/query/query-service.ts';
import { queryRoutes } from '../../src/query/routes.ts';

const JSON_TYPE = { 'content-type': 'application/json' };

function read(chunks: string[], headers: IncomingHttpHeaders) {
  return readGetBody(Readable.from(chunks.map((c) => Buffer.from(c))) as unknown as IncomingMessage, headers);
}

function code(promise: Promise<unknown>) {
  return promise.then(
    () => 'resolved',
    (err: { code?: string }) => err.code,
  );
}

test('a GET body: none gives {}, a JSON object is read', async () => {
  assert.deepEqual(await read([], {}), {});
  assert.deepEqual(await read([' \n'], { ...JSON_TYPE, 'content-length': '2' }), {});
  assert.deepEqual(await read(['{"user_id":', '"u"}'], { ...JSON_TYPE, 'content-length': '14' }), {
    user_id: 'u',
  });
  assert.deepEqual(await read(['{"a":1}'], { ...JSON_TYPE, 'transfer-encoding': 'chunked' }), { a: 1 });
});

test('a GET body that is not a JSON object, or too large, is refused with its code', async () => {
  assert.equal(
    await code(read(['{}'], { 'content-type': 'text/plain', 'content-length': '2' })),
    'TALLY_UNSUPPORTED_MEDIA_TYPE',
  );
  assert.equal(await code(read(['{'], { ...JSON_TYPE, 'content-length': '1' })), 'TALLY_INVALID_JSON');
  assert.equal(await code(read(['[1]'], { ...JSON_TYPE, 'content-length': '3' })), 'TALLY_INVALID_JSON');
  assert.equal(
    await code(read(['{}'], { ...JSON_TYPE, 'content-length': String(64 * 1024 + 1) })),
    'TALLY_BODY_TOO_LARGE',
  );
  const big = `{"a":"${'x'.repeat(64 * 1024)}"}`;
  assert.equal(
    await code(read([big], { ...JSON_TYPE, 'transfer-encoding': 'chunked' })),
    'TALLY_BODY_TOO_LARGE',
  );
});

test('GET /analytics/events: query parameters win over the JSON body', async (t) => {
  const asked: unknown[] = [];
  const query = {
    eventCount: (_project: string, q: Record<string, string>) => {
      asked.push(q);
      return Promise.resolve({ user_id: q.user_id, page_url: q.page_url, count: 3 });
    },
  } as unknown as QueryService;
  const server = Fastify();
  t.after(() => server.close());
  await server.register(queryRoutes({ query, projectOf: () => 'default' }));
  const res = await server.inject({
    method: 'GET',
    url: '/analytics/events?page_url=https://q/',
    headers: JSON_TYPE,
    payload: JSON.stringify({ user_id: 'u', page_url: 'https://body/' }),
  });
  assert.equal(res.statusCode, 200);
  assert.equal(res.body, '{"user_id":"u","page_url":"https://q/","count":3}');
  assert.deepEqual(asked, [{ user_id: 'u', page_url: 'https://q/', consistency: 'replica' }]);
});
