import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { startTestKafka } from '../helpers/kafka.ts';
import {
  metricValue,
  produce,
  spawnProcessor,
  startTestPostgres,
  testProducer,
  waitFor,
} from '../helpers/kafka-process.ts';
import { curlCalls, jsonBlocks, runCurl, seedText, sqlStatements } from './seed-text.ts';

// Seed 004 (Nexus analytics): Go services publish to `user-events`; the analytics service stores
// each event in analytics.events and serves /health and /metrics on METRICS_PORT. Everything
// below is taken from its README and run against `tally process` with a real broker.
const readme = seedText('004');
const [health, metrics] = curlCalls(readme);
const [, countByType, recent] = sqlStatements(readme);
const [healthAnswer] = jsonBlocks(readme);
const EVENT_TYPES = [
  ['user.registered', 'auth-service'],
  ['user.login', 'auth-service'],
  ['user.logout', 'auth-service'],
  ['user.profile_updated', 'user-service'],
  ['user.profile_viewed', 'user-service'],
  ['user.search_performed', 'user-service'],
  ['user.deactivated', 'user-service'],
  ['user.activated', 'user-service'],
] as const;

test('seed 004: user-events messages land in analytics.events; health and metrics as documented', async (t) => {
  assert.equal(health?.url.pathname, '/health');
  assert.equal(metrics?.url.pathname, '/metrics');
  assert.match(countByType ?? '', /^SELECT event_type, COUNT\(\*\) as count/);
  assert.match(recent ?? '', /^SELECT \* FROM analytics.events/);
  const broker = await startTestKafka(t);
  if (!broker) return;
  const db = await startTestPostgres(t);
  const topic = 'user-events';
  await ensureTopics({ brokers: [broker.bootstrap], topics: [topic], partitions: 3 });
  const processor = await spawnProcessor(t, {
    bootstrap: broker.bootstrap,
    topic: `unused-${randomUUID()}`,
    groupId: `nexus-${randomUUID()}`,
    databaseUrl: db.connectionString,
    extra: { TALLY_EXTRA_TOPICS: topic, TALLY_SERVICE_NAME: 'analytics-service' },
  });

  // The seed's event types, in its message shape: event_type, user_id, service, timestamp, data.
  const expected = new Map<string, number>();
  const messages = [];
  for (let i = 0; i < 120; i++) {
    const [type, service] = EVENT_TYPES[i % EVENT_TYPES.length];
    expected.set(type, (expected.get(type) ?? 0) + 1);
    const body = {
      event_type: type,
      user_id: randomUUID(),
      service,
      timestamp: new Date(Date.now() - i * 1000).toISOString(),
      data: { email: `u${i}@example.com` },
    };
    messages.push({
      topic: '',
      key: Buffer.from(body.user_id),
      value: Buffer.from(JSON.stringify(body)),
      headers: new Map<Buffer, Buffer>(),
    });
  }
  await produce(testProducer(t, broker.bootstrap), topic, messages);
  await waitFor('all seed 004 events stored', async () => {
    const { rows } = await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM analytics.events');
    return Number(rows[0].n) === messages.length;
  });

  // "Count events by type".
  const byType = await db.pool.query<{ event_type: string; count: string }>(countByType);
  assert.deepEqual(new Map(byType.rows.map((r) => [r.event_type, Number(r.count)])), expected);
  // "Recent events": the seed's columns, newest first.
  const latest = await db.pool.query<Record<string, unknown>>(recent);
  assert.equal(latest.rows.length, 10);
  assert.deepEqual(Object.keys(latest.rows[0]).slice(0, 7), [
    'id',
    'event_type',
    'user_id',
    'service',
    'timestamp',
    'data',
    'created_at',
  ]);
  const times = latest.rows.map((r) => (r.timestamp as Date).getTime());
  assert.deepEqual(
    times,
    [...times].sort((a, b) => b - a),
  );
  assert.deepEqual(latest.rows[0].data, { email: 'u0@example.com' });

  // "Health Check" answers exactly the documented body.
  const healthRes = await runCurl(health, processor.url);
  assert.equal(healthRes.status, 200);
  assert.deepEqual(healthRes.body, healthAnswer);

  // The four metric names, with event_type and service labels on the processed counter.
  const metricsRes = await runCurl(metrics, processor.url);
  assert.equal(metricsRes.status, 200);
  for (const name of [
    'analytics_events_processed_total',
    'analytics_events_processing_duration_seconds',
    'analytics_events_processing_errors_total',
    'analytics_events_stored_total',
  ]) {
    assert.match(String(metricsRes.body), new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  assert.equal(
    await metricValue(processor.url, 'analytics_events_processed_total', {
      event_type: 'user.login',
      service: 'auth-service',
    }),
    expected.get('user.login'),
  );
});
