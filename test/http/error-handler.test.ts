import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { TallyError, type ErrorCode } from '../../src/errors/tally-error.ts';
import { installErrorHandler } from '../../src/http/error-handler.ts';

test('a 503 says when to retry: in a second when it may pass by itself, in a minute when it waits for an operator', async (t) => {
  const app = Fastify();
  installErrorHandler(app);
  app.get('/:code', (request) => {
    throw new TallyError((request.params as { code: ErrorCode }).code, 'refused');
  });
  t.after(() => app.close());
  const retryAfter = async (code: ErrorCode) => {
    const res = await app.inject({ url: `/${code}` });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json<{ code: string }>().code, code);
    return res.headers['retry-after'];
  };
  assert.equal(await retryAfter('TALLY_DB_UNAVAILABLE'), '1');
  assert.equal(await retryAfter('TALLY_DB_TIMEOUT'), '1');
  assert.equal(await retryAfter('TALLY_SESSION_TIMEOUT_MISMATCH'), '60');
});
