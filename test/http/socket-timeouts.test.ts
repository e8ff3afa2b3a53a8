import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { buildApp } from '../../src/http/build-app.ts';

const TIMEOUT_MS = 300;

/** An app with a 300 ms request timeout, listening on a free port; its server-side sockets' closes are observable. */
async function app(t: TestContext) {
  const a = await buildApp({
    logger: pino({ level: 'silent' }),
    title: 'test',
    requestTimeoutMs: TIMEOUT_MS,
    plugins: [
      async (app) => {
        // Tally still working on the answer well past the timeout (a read-model catch-up, a slow statement).
        app.get('/slow', async () => {
          await sleep(4 * TIMEOUT_MS);
          return { ok: true };
        });
        // A large answer, after a wait past the timeout: a client that does not read it stalls the write.
        app.get('/slow-large', async (_req, reply) => {
          await sleep(2 * TIMEOUT_MS);
          return reply.type('text/plain').send(Buffer.alloc(64 * 1024 * 1024, 0x61));
        });
      },
    ],
  });
  const closed = new Set<Socket>();
  a.server.on('connection', (s: Socket) => s.once('close', () => closed.add(s)));
  t.after(() => a.close());
  const url = new URL(await a.listen({ host: '127.0.0.1', port: 0 }));
  return { url, serverClosedAll: () => closed.size > 0 };
}

/** Polls `cond` until it holds or `ms` pass; returns whether it held. */
async function eventually(cond: () => boolean, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

test('an answer that takes longer than the request timeout still reaches the client', async (t) => {
  const { url } = await app(t);
  // Twice on one keep-alive connection: the socket's timeout must not cut the second one either.
  for (let i = 0; i < 2; i++) {
    const res = await fetch(new URL('/slow', url));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true });
  }
});

test('a connection that sends no request is cut off after the timeout', async (t) => {
  const { url, serverClosedAll } = await app(t);
  const socket = connect(Number(url.port), '127.0.0.1');
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  assert.ok(await eventually(serverClosedAll), 'the server closed the silent connection');
});

test('a client that does not read a started answer is cut off after the timeout', async (t) => {
  const { url, serverClosedAll } = await app(t);
  const socket = connect(Number(url.port), '127.0.0.1');
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  // Never reads: the 64 MB answer fills the socket buffers and its write stalls.
  socket.pause();
  socket.write('GET /slow-large HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.ok(await eventually(serverClosedAll), 'the server closed the connection whose answer stalled');
});
