import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../src/http/build-app.ts';
import { TallyError } from '../../src/errors/tally-error.ts';

async function app(t: TestContext): Promise<FastifyInstance> {
  const a = await buildApp({
    logger: pino({ level: 'silent' }),
    title: 'test',
    requestTimeoutMs: 5000,
    plugins: [
      async (app) => {
        app.get('/object', () => ({ ok: true }));
        app.get(
          '/schema',
          { schema: { response: { 200: { type: 'object', properties: { n: { type: 'integer' } } } } } },
          () => ({ n: 1 }),
        );
        app.get('/string', (_req, reply) => reply.type('application/json; charset=utf-8').send('{"s":1}'));
        app.get('/buffer', (_req, reply) =>
          reply.type('application/problem+json').send(Buffer.from('{"b":1}')),
        );
        app.get('/already', (_req, reply) => reply.type('application/json').send('{"a":1}\n'));
        app.get('/fail', () => {
          throw new TallyError('TALLY_INVALID_QUERY', 'no');
        });
        app.get('/text', (_req, reply) => reply.type('text/plain').send('plain'));
        app.get('/gzip', (_req, reply) =>
          reply.type('application/json').header('content-encoding', 'gzip').send(gzipSync('{"z":1}')),
        );
        app.get('/stream', (_req, reply) =>
          reply.type('application/x-ndjson').send(Readable.from(['{"x":1}'])),
        );
        app.get('/empty', (_req, reply) => reply.code(204).type('application/json').send());
      },
    ],
  });
  t.after(() => a.close());
  return a;
}

test('every JSON answer ends with one newline, and Content-Length counts it', async (t) => {
  const a = await app(t);
  for (const [url, status, body] of [
    ['/object', 200, '{"ok":true}\n'],
    ['/schema', 200, '{"n":1}\n'],
    ['/string', 200, '{"s":1}\n'],
    ['/buffer', 200, '{"b":1}\n'],
    ['/already', 200, '{"a":1}\n'],
    ['/fail', 400, '{"statusCode":400,"code":"TALLY_INVALID_QUERY","error":"Bad Request","message":"no"}\n'],
    [
      '/nowhere',
      404,
      '{"statusCode":404,"code":"TALLY_NOT_FOUND","error":"Not Found","message":"no route for GET /nowhere"}\n',
    ],
  ] as const) {
    const res = await a.inject({ url });
    assert.equal(res.statusCode, status, url);
    assert.equal(res.body, body, url);
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(body)), url);
  }
});

test('non-JSON, compressed, streamed and empty answers pass untouched', async (t) => {
  const a = await app(t);
  assert.equal((await a.inject({ url: '/text' })).body, 'plain');
  const gz = await a.inject({ url: '/gzip' });
  assert.deepEqual(gz.rawPayload, gzipSync('{"z":1}'));
  assert.equal((await a.inject({ url: '/stream' })).body, '{"x":1}');
  const empty = await a.inject({ url: '/empty' });
  assert.equal(empty.statusCode, 204);
  assert.equal(empty.body, '');
});

test('a URL Fastify cannot route is a coded 400 naming the url, ending with a newline', async (t) => {
  const a = await app(t);
  const url = new URL(await a.listen({ host: '127.0.0.1', port: 0 }));
  // inject() would normalise the URL; a raw request keeps the broken percent-encoding.
  const res = await fetch(`${url.origin}/object/%zz%`);
  const text = await res.text();
  assert.equal(res.status, 400);
  assert.ok(text.endsWith('}\n'), text);
  const body = JSON.parse(text) as { code: string; errors: { field: string }[] };
  assert.equal(body.code, 'TALLY_INVALID_QUERY');
  assert.equal(body.errors[0].field, 'url');
});
