import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { LiveFeed } from '../../src/dashboard/live-feed.ts';
import { LiveStreams } from '../../src/dashboard/stream.ts';

test('live streams: keep-alive comments, and a client that leaves is forgotten', async (t) => {
  // Snapshots only at open (an hour apart), so what follows can only be keep-alives.
  const streams = new LiveStreams({ live: new LiveFeed(), intervalMs: 3_600_000, keepAliveMs: 20 });
  const app = Fastify();
  app.get('/s', (request, reply) => streams.open(request, reply, 'p'));
  app.addHook('preClose', (done) => {
    streams.closeAll();
    done();
  });
  t.after(() => app.close());
  const url = await app.listen({ port: 0, host: '127.0.0.1' });

  const abort = new AbortController();
  const res = await fetch(`${url}/s`, { signal: abort.signal });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  const deadline = Date.now() + 10_000;
  while ((text.match(/^: keep-alive$/gm) ?? []).length < 2 && Date.now() < deadline)
    text += (await reader.read()).value ?? '';
  assert.equal((text.match(/^: keep-alive$/gm) ?? []).length >= 2, true, text);
  assert.equal((text.match(/^data: /gm) ?? []).length, 1, 'one snapshot, at open');
  assert.equal(streams.size, 1);

  abort.abort();
  while (streams.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(streams.size, 0, 'the closed connection was dropped');
});
