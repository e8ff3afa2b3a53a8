import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import { LiveFeed } from '../../src/dashboard/live-feed.ts';
import { dashboardRoutes } from '../../src/dashboard/routes.ts';
import { buildApp } from '../../src/http/build-app.ts';

const PIPELINE = {
  mode: 'embedded' as const,
  consumer_lag: null,
  dead_letters: { total: 2, unreplayed: 1, last_at: null },
  last_commit: null,
};

async function app(
  t: TestContext,
  options: { honorDnt?: boolean; live?: LiveFeed; watch?: (project: string) => () => void } = {},
) {
  const live = options.live ?? new LiveFeed();
  const a = await buildApp({
    logger: pino({ level: 'silent' }),
    title: 'test',
    requestTimeoutMs: 5000,
    plugins: [
      dashboardRoutes({
        live,
        pipeline: { status: async () => PIPELINE },
        projectOf: () => 'default',
        honorDnt: options.honorDnt ?? false,
        streamIntervalMs: 50,
        watch: options.watch,
      }),
    ],
  });
  t.after(() => a.close());
  return a;
}

test('the dashboard page: security and cache headers, revalidation, gzip', async (t) => {
  const a = await app(t);
  const page = await a.inject({ url: '/' });
  assert.equal(page.statusCode, 200);
  assert.match(page.headers['content-type'] as string, /^text\/html/);
  const csp = page.headers['content-security-policy'] as string;
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/, 'no inline scripts allowed');
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  assert.equal(page.headers['cache-control'], 'no-cache');
  assert.doesNotMatch(page.body, /<script>|style=|https?:\/\//, 'no inline code and nothing from a CDN');

  const etag = page.headers.etag as string;
  const again = await a.inject({ url: '/', headers: { 'if-none-match': etag } });
  assert.equal(again.statusCode, 304);
  assert.equal(again.body, '');

  const gz = await a.inject({ url: '/', headers: { 'accept-encoding': 'gzip, br' } });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.equal(gunzipSync(gz.rawPayload).toString(), page.body);
  const identity = await a.inject({ url: '/', headers: { 'accept-encoding': 'gzip;q=0' } });
  assert.equal(identity.headers['content-encoding'], undefined);

  // Versioned asset URLs are cacheable forever; the same file without the version is revalidated.
  const assets = [...page.body.matchAll(/(?:href|src)="(\/dashboard\/[^"]+)"/g)].map((m) => m[1]);
  assert.equal(assets.length, 2);
  for (const url of assets) {
    const res = await a.inject({ url });
    assert.equal(res.statusCode, 200, url);
    assert.match(res.headers['cache-control'] as string, /max-age=31536000, immutable/);
    const bare = await a.inject({ url: url.split('?')[0] });
    assert.equal(bare.headers['cache-control'], 'no-cache');
  }
  assert.equal((await a.inject({ url: '/dashboard/nope.js' })).statusCode, 404);
  assert.equal((await a.inject({ method: 'HEAD', url: '/v1/stream' })).statusCode, 404);
});

test('/tally.js carries the Do-Not-Track setting and is small', async (t) => {
  const off = await (await app(t)).inject({ url: '/tally.js', headers: { 'accept-encoding': 'gzip' } });
  const on = await (await app(t, { honorDnt: true })).inject({ url: '/tally.js' });
  assert.equal(off.statusCode, 200);
  assert.match(off.headers['content-type'] as string, /^text\/javascript/);
  assert.equal(off.headers['cross-origin-resource-policy'], 'cross-origin');
  assert.ok(off.rawPayload.length < 2048, `tally.js is ${off.rawPayload.length} bytes gzipped`);
  const text = gunzipSync(off.rawPayload).toString();
  assert.match(text, /var dnt =\s+false &&/);
  assert.match(on.body, /var dnt =\s+true &&/);
  assert.notEqual(on.headers.etag, off.headers.etag);
});

test('/v1/pipeline adds the live snapshot; /v1/stream pushes snapshots and ends when the app closes', async (t) => {
  const live = new LiveFeed();
  const watching = new Map<string, number>();
  const watch = (project: string) => {
    watching.set(project, (watching.get(project) ?? 0) + 1);
    return () => watching.set(project, (watching.get(project) ?? 0) - 1);
  };
  const a = await app(t, { live, watch });
  const pipeline = await a.inject({ url: '/v1/pipeline' });
  assert.equal(pipeline.statusCode, 200);
  assert.equal(pipeline.headers['cache-control'], 'no-store');
  const body = pipeline.json<Record<string, unknown>>();
  assert.equal((body.live as { window_sec: number }).window_sec, 10);
  assert.deepEqual({ ...body, live: undefined }, { ...PIPELINE, live: undefined });

  const url = await a.listen({ port: 0, host: '127.0.0.1' });
  const res = await fetch(`${url}/v1/stream`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  const snapshots = () =>
    [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]) as { commits: number });
  const deadline = Date.now() + 10_000;
  while (snapshots().length < 2 && Date.now() < deadline) text += (await reader.read()).value ?? '';
  assert.match(text, /^retry: \d+\n\n/);
  assert.equal(snapshots()[0].commits, 0);
  assert.equal(watching.get('default'), 1, 'an open stream watches its project');

  live.onCommit([
    {
      project: 'default',
      eventId: 'e',
      type: 'click',
      userId: 'u',
      ts: 0,
      receivedAt: 0,
      pageUrl: null,
      referrer: null,
      sessionId: null,
      userAgent: null,
      country: null,
      service: null,
      properties: null,
    },
  ]);
  while (!snapshots().some((s) => s.commits === 1) && Date.now() < deadline)
    text += (await reader.read()).value ?? '';
  assert.ok(
    snapshots().some((s) => s.commits === 1),
    'a commit shows in the stream',
  );

  await a.close();
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
  }
  assert.equal(watching.get('default'), 0, 'closing the stream stops watching');
});
