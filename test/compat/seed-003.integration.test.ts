import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestTally } from '../helpers/embedded-tally.ts';
import { startTestKafka } from '../helpers/kafka.ts';
import { spawnStartOnKafka, startTestPostgres, waitFor } from '../helpers/kafka-process.ts';
import { curlCalls, runCurl, seedText } from './seed-text.ts';

// Seed 003's "Test the system": ingest one click on :8080, then ask the gateway on :8081 with a
// JSON body on GET. Both calls run exactly as the README writes them, against Tally.
const readme = seedText('003');
const [ingest, ask] = curlCalls(readme);

test('seed 003: the README curl calls ingest an event and count it', async (t) => {
  assert.equal(ingest?.url.pathname, '/ingest');
  assert.equal(ask?.method, 'GET');
  assert.equal(ask.url.pathname, '/analytics/events');
  assert.equal(ask.url.port, '8081');
  const tally = await startTestTally(t);
  const question = JSON.parse(ask.body!) as { user_id: string; page_url: string };

  // Before anything is ingested the count is 0 (not a 404).
  const before = await runCurl(ask, tally.url);
  assert.equal(before.status, 200, JSON.stringify(before.body));
  assert.deepEqual(before.body, { ...question, count: 0 });

  const sent = await runCurl(ingest, tally.url);
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  const answer = await runCurl(ask, tally.url);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.deepEqual(answer.body, { user_id: 'user_1', page_url: 'https://example.com', count: 1 });

  // Re-sent (same event_id): still one. A second event on the page: two.
  await runCurl(ingest, tally.url);
  const event = JSON.parse(ingest.body!) as Record<string, unknown>;
  await runCurl({ ...ingest, body: JSON.stringify({ ...event, event_id: 'test_124' }) }, tally.url);
  // Another user's and another page's events do not count.
  await runCurl(
    { ...ingest, body: JSON.stringify({ ...event, event_id: 'o1', user_id: 'user_2' }) },
    tally.url,
  );
  await runCurl(
    { ...ingest, body: JSON.stringify({ ...event, event_id: 'o2', page_url: 'https://example.com/x' }) },
    tally.url,
  );
  assert.deepEqual((await runCurl(ask, tally.url)).body, { ...question, count: 2 });

  // The same question with query parameters instead of a body.
  const params = new URL(ask.url);
  params.search = new URLSearchParams(question).toString();
  const viaQuery = await runCurl({ method: 'GET', url: params, headers: {}, body: undefined }, tally.url);
  assert.deepEqual(viaQuery.body, { ...question, count: 2 });

  // Missing page_url: 400 naming it; a body that is not JSON: 400.
  const missing = await runCurl({ ...ask, body: JSON.stringify({ user_id: 'user_1' }) }, tally.url);
  assert.equal(missing.status, 400);
  assert.equal((missing.body as { errors: { field: string }[] }).errors[0].field, 'page_url');
  const broken = await runCurl({ ...ask, body: '{"user_id":' }, tally.url);
  assert.equal(broken.status, 400);
  assert.equal((broken.body as { code: string }).code, 'TALLY_INVALID_JSON');

  // The processor's tables: click_events holds each stored event once, page_clicks counts them
  // per page and user.
  const clicks = await tally.database.pool.query<{ event_id: string; event_type: string; time_stamp: Date }>(
    "SELECT event_id, event_type, time_stamp FROM click_events WHERE user_id = 'user_1' ORDER BY event_id",
  );
  assert.deepEqual(
    clicks.rows.map((r) => [r.event_id, r.event_type, r.time_stamp.toISOString()]),
    [
      ['o2', 'click', '2025-11-05T20:00:00.000Z'],
      ['test_123', 'click', '2025-11-05T20:00:00.000Z'],
      ['test_124', 'click', '2025-11-05T20:00:00.000Z'],
    ],
  );
  const perPage = await tally.database.pool.query<{ page_url: string; user_id: string; click_count: number }>(
    'SELECT page_url, user_id, click_count FROM page_clicks ORDER BY page_url, user_id',
  );
  assert.deepEqual(perPage.rows, [
    { page_url: 'https://example.com', user_id: 'user_1', click_count: 2 },
    { page_url: 'https://example.com', user_id: 'user_2', click_count: 1 },
    { page_url: 'https://example.com/x', user_id: 'user_1', click_count: 1 },
  ]);
});

test('seed 003 on Kafka: /ingest → Kafka (KAFKA_BROKER, topic clicks) → PostgreSQL → /analytics/events', async (t) => {
  const broker = await startTestKafka(t);
  if (!broker) return;
  const db = await startTestPostgres(t);
  // The seed's own variables: KAFKA_BROKER, KAFKA_TOPIC (its default, "clicks"), DATABASE_URL.
  const tally = await spawnStartOnKafka(t, {
    KAFKA_BROKER: broker.bootstrap,
    KAFKA_TOPIC: 'clicks',
    DATABASE_URL: db.connectionString,
  });
  const sent = await runCurl(ingest, tally.url);
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  // "Query analytics (wait 5 seconds for processing)": Tally needs well under a second.
  await waitFor('the event to be counted', async () => {
    const answer = await runCurl(ask, tally.url);
    return (answer.body as { count?: number }).count === 1;
  });
  const { rows } = await db.pool.query<{ event_id: string }>('SELECT event_id FROM click_events');
  assert.deepEqual(rows, [{ event_id: 'test_123' }]);
});
