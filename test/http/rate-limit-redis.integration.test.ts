import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { generateKey, hashKey } from '../../src/auth/api-keys.ts';
import { KeySet } from '../../src/auth/key-set.ts';
import { buildApp } from '../../src/http/build-app.ts';
import { startTestRedis } from '../helpers/redis.ts';
import { requireTool } from '../helpers/require-tool.ts';

const logger = pino({ level: 'silent' });

test('with Redis the per-key limit holds across replicas; Redis down lets requests through', async (t) => {
  if (!requireTool(t, 'redis-server', 'shared rate-limit counters')) return;
  const redisServer = await startTestRedis();
  t.after(() => redisServer.stop());
  const key = generateKey();
  const keys = new KeySet({
    load: () =>
      Promise.resolve([
        {
          id: 1,
          project: 'p',
          scope: 'read' as const,
          hashHex: hashKey(key).toString('hex'),
          revoked: false,
        },
      ]),
    logger,
    refreshMs: 60_000,
  });
  await keys.start();
  t.after(() => keys.stop());

  const replica = async (tt: TestContext): Promise<FastifyInstance> => {
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
    // A long window: "5 per window" is then exact, whatever the machine's speed.
    const app = await buildApp({
      logger,
      title: 't',
      requestTimeoutMs: 30_000,
      auth: { keys, rateLimitPerSec: 5, rateLimitRedis: redis, rateLimitWindowMs: 60_000 },
      plugins: [async (a: FastifyInstance) => void a.get('/v1/stats/summary', () => ({ ok: true }))],
    });
    tt.after(async () => {
      await app.close();
      redis.disconnect();
    });
    return app;
  };
  const a = await replica(t);
  const b = await replica(t);
  const get = (app: FastifyInstance) =>
    app.inject({ url: '/v1/stats/summary', headers: { 'x-api-key': key } });

  for (let i = 0; i < 5; i++) assert.equal((await get(a)).statusCode, 200, `request ${i} on replica a`);
  const limited = await get(b);
  assert.equal(limited.statusCode, 429, 'replica b sees the 5 requests replica a counted');
  assert.ok(Number(limited.headers['retry-after']) > 0);

  await redisServer.kill();
  assert.equal((await get(b)).statusCode, 200, 'a Redis outage does not take the API down');
});
