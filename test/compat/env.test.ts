import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';

test("Tally's own variable wins over the earlier systems' spelling of it", () => {
  const both = loadConfig({
    DATABASE_URL: 'postgresql://own@db/own',
    DB_HOST: 'other',
    KAFKA_BROKERS: 'own:9092',
    KAFKA_BROKER: 'other:9092',
    REDIS_URL: 'redis://own:6379',
    REDIS_ADDR: 'other:6379',
    REDIS_HOST: 'other',
  });
  assert.deepEqual(both.database, { kind: 'external', connectionString: 'postgresql://own@db/own' });
  assert.deepEqual(both.kafka?.brokers, ['own:9092']);
  assert.equal(both.redisUrl, 'redis://own:6379');
});

test("the earlier systems' spellings alone name the same settings", () => {
  assert.deepEqual(loadConfig({ KAFKA_BROKER: 'a:9092,b:9092' }).kafka?.brokers, ['a:9092', 'b:9092']);
  assert.equal(loadConfig({ REDIS_ADDR: 'rediss://r:6380' }).redisUrl, 'rediss://r:6380');
  assert.equal(loadConfig({ REDIS_ADDR: 'r:6380', REDIS_HOST: 'h' }).redisUrl, 'redis://r:6380');
  assert.equal(loadConfig({ REDIS_HOST: 'h', REDIS_PORT: '6390' }).redisUrl, 'redis://h:6390');
  assert.equal(loadConfig({ REDIS_PORT: '6390' }).redisUrl, undefined);
  assert.deepEqual(loadConfig({ DB_NAME: 'a/b', DB_USER: 'u:1', DB_PORT: '6543' }).database, {
    kind: 'external',
    connectionString: 'postgresql://u%3A1:postgres@localhost:6543/a%2Fb',
  });
  assert.deepEqual(loadConfig({ DB_PASSWORD: '' }).database, { kind: 'embedded', dataDir: '.tally' });
});
