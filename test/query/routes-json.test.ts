import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import type { QueryService } from '../../src/query/query-service.ts';
import { queryRoutes } from '../../src/query/routes.ts';

const FROM = '2026-01-01T00:00:00.000Z';
const TO = '2026-01-02T00:00:00.000Z';
// The visit figures of a summary (issue 20), required by its response schema.
const VISITS = {
  visitors: 1,
  visits: 1,
  bounce_rate: 100,
  visit_duration: 0,
  visit_duration_median: 0,
  views_per_visit: 1,
};

/** A query API over a stub service whose summary is `answer()`. */
async function app(answer: () => object) {
  const server = Fastify();
  const query = { summary: () => Promise.resolve(answer()) } as unknown as QueryService;
  await server.register(queryRoutes({ query, projectOf: () => 'default' }));
  return server;
}

async function getSummary(server: Awaited<ReturnType<typeof app>>) {
  const res = await server.inject({ method: 'GET', url: '/v1/stats/summary', query: { from: FROM, to: TO } });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
  return res.body;
}

test('a near-cache answer (frozen, shared) is sent through the response schema, hit after hit', async () => {
  // `internal` is not in the response schema: the schema's serializer leaves it out, and so must
  // the JSON kept for later hits.
  const shared = Object.freeze({
    from: FROM,
    to: TO,
    events: 3,
    page_views: 2,
    unique_users: 1,
    ...VISITS,
    internal: 'x',
  });
  const server = await app(() => shared);
  const expected = JSON.stringify({
    from: FROM,
    to: TO,
    events: 3,
    page_views: 2,
    unique_users: 1,
    ...VISITS,
  });
  for (let i = 0; i < 3; i++) assert.equal(await getSummary(server), expected);
  await server.close();
});

test('an answer that is not frozen is serialized afresh each time', async () => {
  const answer = { from: FROM, to: TO, events: 1, page_views: 0, unique_users: 1, ...VISITS };
  const server = await app(() => answer);
  assert.equal((JSON.parse(await getSummary(server)) as { events: number }).events, 1);
  answer.events = 2;
  assert.equal((JSON.parse(await getSummary(server)) as { events: number }).events, 2);
  await server.close();
});
