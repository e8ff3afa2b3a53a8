import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LiveFeed } from '../../src/dashboard/live-feed.ts';
import { RollingRate } from '../../src/dashboard/rolling-rate.ts';
import type { TallyEvent } from '../../src/event/types.ts';

function event(project: string, n: number): TallyEvent {
  return {
    project,
    eventId: `e${n}`,
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
  };
}

test('RollingRate averages the last 10 seconds and forgets older ones', () => {
  const r = new RollingRate(10);
  const t0 = 1_700_000_000_000;
  r.record(50, t0);
  r.record(30, t0 + 4_500);
  assert.equal(r.rate(t0 + 5_000), 8);
  // t0's second leaves the window after 10 s; the ring slot is reused by a later second.
  assert.equal(r.rate(t0 + 10_000), 3);
  r.record(7, t0 + 10_200);
  assert.equal(r.rate(t0 + 10_300), 3.7);
  assert.equal(r.rate(t0 + 60_000), 0);
});

test('LiveFeed counts committed events per project and reports the last commit', () => {
  let now = 1_700_000_000_000;
  const feed = new LiveFeed({ now: () => now });
  assert.deepEqual(feed.snapshot('a'), {
    now: new Date(now).toISOString(),
    rate: 0,
    window_sec: 10,
    committed: 0,
    commits: 0,
    last_commit: null,
  });
  feed.onCommit([event('a', 1), event('a', 2), event('b', 3)]);
  feed.onCommit([]);
  now += 2_000;
  feed.onCommit([event('a', 4)]);
  const a = feed.snapshot('a');
  assert.equal(a.committed, 3);
  assert.equal(a.commits, 2);
  assert.equal(a.rate, 0.3);
  assert.equal(a.last_commit, new Date(now).toISOString());
  const b = feed.snapshot('b');
  assert.equal(b.committed, 1);
  assert.equal(b.commits, 1);
  assert.equal(feed.lastCommit('c'), null);
});
