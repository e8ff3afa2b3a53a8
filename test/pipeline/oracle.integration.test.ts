import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getJson, startTestTally } from '../helpers/embedded-tally.ts';
import { Oracle, pool, prng, type OracleEvent, type Unit } from '../helpers/oracle.ts';

const UNIQUE_EVENTS = 50_000;
const RESEND_SHARE = 0.1;
const USERS = 1_200;
const PAGES = 60;
const HOUR = 3_600_000;
const MINUTE = 60_000;
const KOLKATA = 5.5 * HOUR;
const TYPES = [
  'page_view',
  'page_view',
  'page_view',
  'page_view',
  'click',
  'click',
  'user.login',
  'signup',
  'purchase',
];

interface Send {
  body: Record<string, unknown>;
  skewMs: number;
}

function generate(random: () => number, now: number) {
  const oracle = new Oracle();
  const sends: Send[] = [];
  const start = Math.floor(now / HOUR) * HOUR - 4 * HOUR;
  for (let i = 0; i < UNIQUE_EVENTS; i++) {
    const type = TYPES[Math.floor(random() * TYPES.length)];
    let ts = start + Math.floor(random() * (now - 2 * MINUTE - start));
    const late = random() < 0.05;
    if (late) ts -= HOUR; // arrives among events an hour newer
    const skewed = !late && random() < 0.05;
    // Skewed clients: keep the true time mid-minute, so network latency cannot move its bucket.
    if (skewed) ts = Math.floor(ts / MINUTE) * MINUTE + 30_000;
    const e: OracleEvent = { event_id: `ev-${i}`, type, user_id: `user-${Math.floor(random() * USERS)}`, ts };
    if (type === 'page_view' || type === 'click')
      e.page_url = `https://shop.example/p/${Math.floor(random() * PAGES)}`;
    oracle.add(e);
    const skewMs = skewed ? (random() < 0.5 ? -1 : 1) * (1 + Math.floor(random() * 3)) * HOUR : 0;
    const body: Record<string, unknown> = {
      event_id: e.event_id,
      type: e.type,
      user_id: e.user_id,
      timestamp: random() < 0.5 ? e.ts + skewMs : new Date(e.ts + skewMs).toISOString(),
    };
    if (e.page_url) body.page_url = e.page_url;
    sends.push({ body, skewMs });
    if (random() < RESEND_SHARE) sends.push({ body, skewMs });
  }
  // Shuffle (Fisher-Yates) so order, lateness and duplicates are all mixed.
  for (let i = sends.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [sends[i], sends[j]] = [sends[j], sends[i]];
  }
  return { oracle, sends, resent: sends.length - UNIQUE_EVENTS };
}

function encode(batch: Send[], kind: number): { body: string; contentType: string } {
  // sent_at is stamped at send time in the client's (skewed) clock.
  const items = batch.map((s) =>
    s.skewMs === 0 ? s.body : { ...s.body, sent_at: new Date(Date.now() + s.skewMs).toISOString() },
  );
  if (kind === 0 && items.length === 1)
    return { body: JSON.stringify(items[0]), contentType: 'application/json' };
  if (kind === 1)
    return {
      body: items.map((i) => JSON.stringify(i)).join('\n') + '\n',
      contentType: 'application/x-ndjson',
    };
  return { body: JSON.stringify(items), contentType: 'application/json' };
}

test(
  'every endpoint equals the oracle after 55k concurrent mixed requests',
  { timeout: 300_000 },
  async (t) => {
    const random = prng(20261122);
    const now = Date.now();
    const { oracle, sends, resent } = generate(random, now);
    const tally = await startTestTally(t);

    // Mixed request shapes: single events, JSON arrays and NDJSON of random sizes.
    const requests: Send[][] = [];
    for (let i = 0; i < sends.length;) {
      const size = random() < 0.3 ? 1 : 1 + Math.floor(random() * 200);
      requests.push(sends.slice(i, i + size));
      i += size;
    }
    let accepted = 0;
    let duplicates = 0;
    await pool(
      requests.map((batch) => async () => {
        const { body, contentType } = encode(batch, Math.floor(random() * 3));
        const res = await fetch(`${tally.url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': contentType },
          body,
        });
        const json = (await res.json()) as { accepted: number; duplicates: number; rejected?: unknown };
        assert.equal(res.status, 202, JSON.stringify(json).slice(0, 300));
        assert.equal(json.rejected, undefined);
        accepted += json.accepted;
        duplicates += json.duplicates;
      }),
      12,
    );
    assert.equal(accepted, sends.length);
    assert.equal(duplicates, resent, 'each re-sent event is reported as a duplicate exactly once');

    const from = Math.floor((now - 7 * HOUR) / HOUR) * HOUR;
    const to = now + 2 * MINUTE;
    const range = `from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`;

    const summary = await getJson(`${tally.url}/v1/stats/summary?${range}`);
    assert.deepEqual(
      {
        events: summary.body.events,
        page_views: summary.body.page_views,
        unique_users: summary.body.unique_users,
      },
      oracle.summary(from, to),
    );

    for (const tz of ['UTC', 'Asia/Kolkata']) {
      const offset = tz === 'UTC' ? 0 : KOLKATA;
      for (const interval of ['minute', 'hour', 'day'] as Unit[]) {
        for (const metric of ['events', 'page_views', 'unique_users'] as const) {
          const res = await getJson<{ points: { t: string; value: number }[] }>(
            `${tally.url}/v1/stats/timeseries?metric=${metric}&interval=${interval}&tz=${tz}&${range}`,
          );
          assert.equal(res.status, 200);
          assertSeries(
            res.body.points,
            oracle.series(metric, interval, offset),
            `${metric}/${interval}/${tz}`,
            tz,
          );
        }
      }
    }

    // Filters: one event type; one page.
    const clicks = await getJson<{ points: { t: string; value: number }[] }>(
      `${tally.url}/v1/stats/timeseries?metric=events&event_type=click&interval=hour&${range}`,
    );
    assertSeries(
      clicks.body.points,
      oracle.series('events', 'hour', 0, (e) => e.type === 'click'),
      'clicks/hour',
      'UTC',
    );
    const page = 'https://shop.example/p/7';
    const pageViews = await getJson<{ points: { t: string; value: number }[] }>(
      `${tally.url}/v1/stats/timeseries?metric=page_views&page_url=${encodeURIComponent(page)}&interval=day&tz=Asia/Kolkata&${range}`,
    );
    assertSeries(
      pageViews.body.points,
      oracle.series('page_views', 'day', KOLKATA, (e) => e.page_url === page),
      'page/day',
      'Asia/Kolkata',
    );

    const top = await getJson<{ pages: unknown[] }>(`${tally.url}/v1/stats/top-pages?limit=1000&${range}`);
    assert.deepEqual(top.body.pages, oracle.topPages());

    const types = await getJson<{ types: { type: string; count: number }[] }>(
      `${tally.url}/v1/stats/event-types?limit=1000&${range}`,
    );
    assert.deepEqual(new Map(types.body.types.map((x) => [x.type, x.count])), oracle.eventTypes());

    for (const user of ['user-0', 'user-17', 'user-1199']) {
      const res = await getJson<{ events: { event_id: string; timestamp: string }[] }>(
        `${tally.url}/v1/users/${user}/events?limit=1000`,
      );
      const expected = oracle.userEvents(user);
      assert.deepEqual(
        new Set(res.body.events.map((e) => e.event_id)),
        new Set(expected.map((e) => e.event_id)),
      );
      const times = res.body.events.map((e) => Date.parse(e.timestamp));
      assert.deepEqual(
        times,
        [...times].sort((a, b) => b - a),
        'newest first',
      );
    }

    const { rows } = await tally.database.pool.query<{ n: number; ids: number }>(
      'SELECT count(*)::int8 AS n, count(DISTINCT event_id)::int8 AS ids FROM tally.events',
    );
    assert.deepEqual(
      rows[0],
      { n: UNIQUE_EVENTS, ids: UNIQUE_EVENTS },
      'raw table holds each event exactly once',
    );
  },
);

function assertSeries(
  points: { t: string; value: number }[],
  expected: Map<number, number>,
  what: string,
  tz: string,
): void {
  const got = new Map<number, number>();
  for (const p of points) {
    if (tz === 'Asia/Kolkata') assert.match(p.t, /\+05:30$/, `${what}: label ${p.t} carries the zone offset`);
    got.set(Date.parse(p.t), p.value);
  }
  for (const [bucket, value] of expected) {
    assert.equal(got.get(bucket), value, `${what}: bucket ${new Date(bucket).toISOString()}`);
  }
  for (const [bucket, value] of got)
    if (!expected.has(bucket))
      assert.equal(value, 0, `${what}: empty bucket ${new Date(bucket).toISOString()}`);
  const starts = [...got.keys()];
  assert.deepEqual(
    starts,
    [...starts].sort((a, b) => a - b),
    `${what}: points in time order`,
  );
}
