import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';

test('defaults: embedded database, port 8080, seed topic and group', () => {
  const c = loadConfig({});
  assert.equal(c.serverPort, 8080);
  assert.equal(c.host, '127.0.0.1');
  assert.deepEqual(c.database, { kind: 'embedded', dataDir: '.tally' });
  assert.equal(c.raw.KAFKA_TOPIC, 'incoming.user_activity');
  assert.equal(c.raw.KAFKA_GROUP_ID, 'user-activity-consumer-group');
  assert.equal(c.kafka, undefined);
});

test('DB_* variables build a connection string with the seed defaults', () => {
  const c = loadConfig({ DB_HOST: 'db', DB_PASSWORD: 'p@ss' });
  assert.deepEqual(c.database, {
    kind: 'external',
    connectionString: 'postgresql://postgres:p%40ss@db:5432/analytics',
  });
});

test('Redis from REDIS_ADDR or REDIS_HOST/PORT; Kafka from KAFKA_BROKERS', () => {
  assert.equal(loadConfig({ REDIS_ADDR: 'r:6380' }).redisUrl, 'redis://r:6380');
  assert.equal(loadConfig({ REDIS_HOST: 'r' }).redisUrl, 'redis://r:6379');
  assert.deepEqual(
    loadConfig({ KAFKA_BROKERS: 'a:9092, b:9092', TALLY_EXTRA_TOPICS: 'user-events,clicks' }).kafka,
    {
      brokers: ['a:9092', 'b:9092'],
      topic: 'incoming.user_activity',
      groupId: 'user-activity-consumer-group',
      extraTopics: ['user-events', 'clicks'],
    },
  );
});

test('bad values fail fast, naming each variable', () => {
  assert.throws(
    () =>
      loadConfig({
        SERVER_PORT: 'eighty',
        FLUSH_INTERVAL_SEC: '0',
        TALLY_STORE_RAW: 'maybe',
        TALLY_TYPO: '1',
      }),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'TALLY_CONFIG_INVALID');
      for (const name of ['SERVER_PORT', 'FLUSH_INTERVAL_SEC', 'TALLY_STORE_RAW', 'TALLY_TYPO'])
        assert.match(err.message, new RegExp(name));
      return true;
    },
  );
});

test('an unknown TALLY_ variable is refused by name; the test and CI switches are not configuration', () => {
  assert.throws(() => loadConfig({ TALLY_BATCH_LINGER: '1' }), /TALLY_BATCH_LINGER: unknown Tally variable/);
  const c = loadConfig({ TALLY_REQUIRE_ALL_SUITES: '1', TALLY_COMPAT_DATABASE_URL: 'postgresql://x/y' });
  assert.deepEqual(c.database, { kind: 'embedded', dataDir: '.tally' });
});

test('Kafka replication settings: both optional; min.insync.replicas above the replication factor is refused', () => {
  const absent = loadConfig({}).raw;
  assert.equal(absent.TALLY_KAFKA_REPLICATION_FACTOR, undefined);
  assert.equal(absent.TALLY_KAFKA_MIN_INSYNC_REPLICAS, undefined);
  const set = loadConfig({ TALLY_KAFKA_REPLICATION_FACTOR: '3', TALLY_KAFKA_MIN_INSYNC_REPLICAS: '2' }).raw;
  assert.equal(set.TALLY_KAFKA_REPLICATION_FACTOR, 3);
  assert.equal(set.TALLY_KAFKA_MIN_INSYNC_REPLICAS, 2);
  assert.throws(
    () => loadConfig({ TALLY_KAFKA_REPLICATION_FACTOR: '2', TALLY_KAFKA_MIN_INSYNC_REPLICAS: '3' }),
    /TALLY_KAFKA_MIN_INSYNC_REPLICAS: 3 is more than TALLY_KAFKA_REPLICATION_FACTOR \(2\)/,
  );
  assert.throws(() => loadConfig({ TALLY_KAFKA_REPLICATION_FACTOR: '0' }), /TALLY_KAFKA_REPLICATION_FACTOR/);
});
