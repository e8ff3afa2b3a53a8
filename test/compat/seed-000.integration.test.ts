import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestTally } from '../helpers/embedded-tally.ts';
import { startTestKafka } from '../helpers/kafka.ts';
import { spawnStartOnKafka, startTestPostgres, waitFor } from '../helpers/kafka-process.ts';
import { curlCalls, runCurl, seedText, sqlStatements } from './seed-text.ts';

// Seeds 000-002 describe one system (a Go producer + consumer). Every example in their text runs
// here exactly as written, against Tally instead of the seed's host and port.
const readme = seedText('000');
const [postActivity, getHealth] = curlCalls(readme);
const [recentMetricsSql] = sqlStatements(readme);

interface MetricsRow {
  id: number;
  timestamp: Date;
  unique_users: number;
  page_view_count: number;
  created_at: Date;
}

test('seed 000: the README examples give exact per-minute metrics', async (t) => {
  assert.equal(postActivity?.url.pathname, '/activity');
  assert.equal(getHealth?.url.pathname, '/health');
  assert.equal(recentMetricsSql, 'SELECT * FROM user_activity_metrics ORDER BY created_at DESC LIMIT 10');
  const tally = await startTestTally(t);

  // "Send user activity events": the seed answered 200 OK.
  const sent = await runCurl(postActivity, tally.url);
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  assert.equal((sent.body as { accepted: number }).accepted, 1);

  // "Check producer health".
  const health = await runCurl(getHealth, tally.url);
  assert.equal(health.status, 200);
  assert.equal((health.body as { status: string }).status, 'healthy');

  // The seed's verification checklist: invalid events are rejected with 400.
  const invalid = await runCurl(
    { ...postActivity, body: JSON.stringify({ activity_type: 'page_view' }) },
    tally.url,
  );
  assert.equal(invalid.status, 400);

  // More activity in the same minute as the README's event and in the next one: page views by
  // three users (one event re-sent), plus clicks, which are not page views.
  const seedEvent = JSON.parse(postActivity.body!) as Record<string, unknown>;
  const more = [
    { ...seedEvent, user_id: '12345', event_id: 'a1', timestamp: '2024-07-01T12:34:10Z' },
    { ...seedEvent, user_id: '12345', event_id: 'a1', timestamp: '2024-07-01T12:34:10Z' },
    { ...seedEvent, user_id: '777', event_id: 'a2', timestamp: '2024-07-01T12:34:59.999Z' },
    {
      ...seedEvent,
      user_id: '888',
      event_id: 'a3',
      activity_type: 'click',
      timestamp: '2024-07-01T12:34:30Z',
    },
    { ...seedEvent, user_id: '777', event_id: 'a4', timestamp: '2024-07-01T12:35:00Z' },
  ];
  for (const body of more) {
    const res = await runCurl({ ...postActivity, body: JSON.stringify(body) }, tally.url);
    assert.equal(res.status, 200);
  }

  // "View aggregated metrics in PostgreSQL": one row per minute, exact.
  const { rows } = await tally.database.pool.query<MetricsRow>(recentMetricsSql);
  const byMinute = new Map(rows.map((r) => [r.timestamp.toISOString(), r]));
  assert.equal(rows.length, 2);
  assert.deepEqual(
    {
      users: byMinute.get('2024-07-01T12:34:00.000Z')?.unique_users,
      views: byMinute.get('2024-07-01T12:34:00.000Z')?.page_view_count,
    },
    { users: 3, views: 3 },
  );
  assert.deepEqual(
    {
      users: byMinute.get('2024-07-01T12:35:00.000Z')?.unique_users,
      views: byMinute.get('2024-07-01T12:35:00.000Z')?.page_view_count,
    },
    { users: 1, views: 1 },
  );
  // Newest change first, as the seed's ORDER BY created_at DESC promises.
  assert.ok(rows[0].created_at >= rows[1].created_at);
});

test('seed 000 on Kafka: POST /activity → incoming.user_activity → user_activity_metrics', async (t) => {
  const broker = await startTestKafka(t);
  if (!broker) return;
  const db = await startTestPostgres(t);
  // The seed's own variables: KAFKA_BROKERS, DB_*; topic and group are the seed's defaults.
  const url = new URL(db.connectionString);
  const tally = await spawnStartOnKafka(t, {
    KAFKA_BROKERS: broker.bootstrap,
    DB_HOST: url.hostname,
    DB_PORT: url.port,
    DB_USER: decodeURIComponent(url.username),
    DB_PASSWORD: decodeURIComponent(url.password),
    DB_NAME: url.pathname.slice(1),
  });
  const sent = await runCurl(postActivity, tally.url);
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  assert.equal((await runCurl(getHealth, tally.url)).status, 200);
  let row: MetricsRow | undefined;
  await waitFor('the minute to appear in user_activity_metrics', async () => {
    const { rows } = await db.pool.query<MetricsRow>(recentMetricsSql);
    row = rows.find((r) => r.timestamp.toISOString() === '2024-07-01T12:34:00.000Z');
    return row !== undefined;
  });
  // This pool is the plain `pg` one: bigint comes back as a string.
  assert.equal(Number(row!.unique_users), 1);
  assert.equal(Number(row!.page_view_count), 1);
  const topics = await db.pool.query<{ topic: string; group_id: string }>(
    'SELECT DISTINCT topic, group_id FROM tally.positions',
  );
  assert.deepEqual(topics.rows, [
    { topic: 'incoming.user_activity', group_id: 'user-activity-consumer-group' },
  ]);
});
