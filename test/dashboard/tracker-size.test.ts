import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { LiveFeed } from '../../src/dashboard/live-feed.ts';
import { dashboardRoutes } from '../../src/dashboard/routes.ts';
import { buildApp } from '../../src/http/build-app.ts';

/** The budget the issue sets for the tracker a site embeds (README states the measured size). */
const BUDGET = 2048;

test('/tally.js as served stays under 2 KB gzipped, with and without Do-Not-Track', async (t) => {
  for (const honorDnt of [false, true]) {
    const app = await buildApp({
      logger: pino({ level: 'silent' }),
      title: 'test',
      requestTimeoutMs: 5000,
      plugins: [
        dashboardRoutes({
          live: new LiveFeed(),
          pipeline: {
            status: async () => ({
              mode: 'embedded' as const,
              consumer_lag: null,
              dead_letters: { total: 0, unreplayed: 0, last_at: null },
              last_commit: null,
            }),
          },
          projectOf: () => 'default',
          honorDnt,
        }),
      ],
    });
    t.after(() => app.close());
    const res = await app.inject({ url: '/tally.js' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-encoding'], undefined, 'the plain file, gzipped here');
    const size = gzipSync(res.rawPayload, { level: 9 }).length;
    t.diagnostic(`tally.js (honorDnt=${honorDnt}): ${res.rawPayload.length} bytes, ${size} bytes gzipped`);
    assert.ok(size < BUDGET, `tally.js is ${size} bytes gzipped; the budget is ${BUDGET}`);
  }
});
