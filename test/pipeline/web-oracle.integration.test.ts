import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestTally } from '../helpers/embedded-tally.ts';
import { prng } from '../helpers/oracle.ts';
import {
  assertBreakdown,
  assertProduct,
  assertSessions,
  assertSummary,
  question,
  sendBeacons,
  sendEvents,
  WebOracle,
} from '../helpers/web-oracle.ts';
import { generateTraffic, MINUTE, webEvent } from '../helpers/web-traffic.ts';

/**
 * Issue 20's numbers end to end in embedded mode: generated web traffic (./helpers/web-traffic.ts)
 * goes in over HTTP, shuffled and concurrent, with duplicates, beacons and a second wave of late
 * events that merge visits, insert visits between others and move visit starts; then every
 * summary and breakdown asked, and tally.sessions itself, must equal a from-scratch computation.
 */

const DIMENSIONS = [
  'channel',
  'referrer',
  'utm_source',
  'utm_campaign',
  'browser',
  'os',
  'device',
  'country',
  'page',
  'entry_page',
  'exit_page',
  'event_type',
];

test(
  'web analytics in embedded mode equal the oracle after shuffled, duplicated and late events',
  { timeout: 180_000 },
  async (t) => {
    const now = Date.now();
    const traffic = generateTraffic({ seed: 2020, users: 260, now, collectUsers: 8 });
    const random = prng(7);
    assert.ok(traffic.all.length > 2500, `${traffic.all.length} events`);
    assert.ok(
      traffic.collect.length > 0 && traffic.kinds.merge > 10 && traffic.kinds.insert > 5,
      JSON.stringify(traffic.kinds),
    );
    const tally = await startTestTally(t);

    // First wave: bulk over /v1/events and beacons over /v1/collect, at the same time.
    const [bulk] = await Promise.all([
      sendEvents([tally.url], traffic.bulk, random, { maxBatch: 120, concurrency: 6 }),
      sendBeacons(tally.url, traffic.collect, 2),
    ]);
    assert.equal(bulk.accepted, traffic.bulk.length);
    assert.equal(bulk.duplicates, traffic.resent.bulk, 'each re-sent event is a duplicate exactly once');

    // Rollups are per minute: the API floors `from` and rounds `to` up (README, "Query").
    const from = Math.floor((now - 9 * 60 * MINUTE) / MINUTE) * MINUTE;
    const to = Math.ceil((now + MINUTE) / MINUTE) * MINUTE;
    const firstWave = new WebOracle(traffic.all.filter((g) => !g.late));
    await assertSessions(tally.database.pool, firstWave);
    await assertSummary(tally.url, firstWave, question(from, to), 'first wave');

    // Second wave: late events (stored visits merge, grow and appear between others) and re-sends.
    const late = await sendEvents([tally.url], traffic.late, random, { maxBatch: 40, concurrency: 6 });
    assert.equal(late.duplicates, traffic.resent.late);

    const oracle = new WebOracle(traffic.all);
    assert.ok(oracle.mergedFrom(firstWave) > 0, 'late events merged stored visits');
    const { rows } = await tally.database.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM tally.events',
    );
    assert.equal(rows[0].n, traffic.all.length, 'each event stored once');
    await assertSessions(tally.database.pool, oracle);
    assert.ok(oracle.visits.some((v) => v.isBot) && oracle.visits.some((v) => v.sessionKey !== ''));

    const all = question(from, to);
    await assertSummary(tally.url, oracle, all, 'no filter');
    await assertSummary(tally.url, oracle, question(from, to, [], 'include'), 'bots=include');
    await assertSummary(tally.url, oracle, question(from, to, [], 'only'), 'bots=only');
    // Part of the window: visits count where they start.
    const mid = Math.floor((from + to) / 2 / MINUTE) * MINUTE;
    await assertSummary(tally.url, oracle, question(mid - 90 * MINUTE, mid), 'three hours');

    const email = { dim: 'channel', op: '==' as const, values: ['Email'] };
    const mobile = { dim: 'device', op: '==' as const, values: ['mobile', 'tablet'] };
    const filtered = [
      [email],
      [mobile, { dim: 'country', op: '!=' as const, values: ['US', '(none)'] }],
      [
        { dim: 'page', op: '~=' as const, values: ['BLOG', 'docs'] },
        { dim: 'utm_source', op: '!~' as const, values: ['news'] },
      ],
      [
        { dim: 'entry_page', op: '==' as const, values: ['/pricing', "/it's%_x"] },
        { dim: 'browser', op: '!=' as const, values: ['Firefox'] },
      ],
    ];
    for (const filters of filtered)
      await assertSummary(tally.url, oracle, question(from, to, filters), 'filtered');
    await assertSummary(tally.url, oracle, question(from, to, [mobile], 'include'), 'filtered, bots=include');

    for (const dim of DIMENSIONS) await assertBreakdown(tally.url, oracle, all, dim);
    await assertBreakdown(tally.url, oracle, question(from, to, [], 'only'), 'browser');
    await assertBreakdown(tally.url, oracle, question(from, to, [], 'include'), 'channel');
    for (const dim of ['page', 'channel', 'country', 'exit_page'])
      await assertBreakdown(tally.url, oracle, question(from, to, [mobile]), dim);
    await assertBreakdown(tally.url, oracle, question(from, to, [email]), 'device');
    await assertBreakdown(tally.url, oracle, question(from, to, filtered[3]), 'referrer');
    // An event-level filter under a visit-level dimension, and the reverse.
    const purchases = { dim: 'event_type', op: '==' as const, values: ['purchase'] };
    await assertBreakdown(tally.url, oracle, question(from, to, [purchases]), 'channel');
    await assertBreakdown(tally.url, oracle, question(from, to, [email, purchases]), 'country');
    // Part of the window: a visit that started before it counts none of its visits.
    for (const dim of ['entry_page', 'browser', 'utm_source'])
      await assertBreakdown(tally.url, oracle, question(mid - 90 * MINUTE, mid), dim);
    // Issue 21: funnels, retention and paths of the same traffic.
    await assertProduct(tally.url, oracle, from, to);
  },
);

// TRICKY: (bucket, user) rows are derived before PostgreSQL says which events are fresh; a re-send
// with another time, user or bot flag, in a batch with a new event, must add no user to the
// rollups (migrations 014, 016: only rows with a fresh event among their events are recorded).
test(
  'a re-sent event_id that differs from the stored event (time, user, bot flag) changes no number',
  { timeout: 60_000 },
  async (t) => {
    const tally = await startTestTally(t);
    const base = Math.floor((Date.now() - 3 * 60 * MINUTE) / MINUTE) * MINUTE;
    const human = 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0';
    const stored = [
      {
        event_id: 'x-1',
        type: 'page_view',
        user_id: 'x-u1',
        timestamp: base,
        page_url: 'https://a.example/',
      },
      {
        event_id: 'x-2',
        type: 'page_view',
        user_id: 'x-u2',
        timestamp: base,
        page_url: 'https://a.example/',
      },
      {
        event_id: 'x-3',
        type: 'page_view',
        user_id: 'x-bot',
        timestamp: base,
        page_url: 'https://a.example/',
        user_agent: 'curl/8.5.0',
      },
    ];
    // The same event_ids again, each other than stored: an hour later; another user; a browser.
    // With one new event in the same batch (a batch of duplicates only stops early and stores nothing).
    const fresh = { ...stored[0], event_id: 'x-4', user_id: 'x-u4' };
    const resent = [
      fresh,
      { ...stored[0], timestamp: base + 60 * MINUTE },
      { ...stored[1], user_id: 'x-u3' },
      { ...stored[2], user_agent: human },
    ];
    for (const batch of [stored, resent]) {
      const sent = await sendEvents([tally.url], batch, () => 0.9, { maxBatch: 10, concurrency: 1 });
      assert.equal(sent.duplicates, batch === resent ? 3 : 0);
    }
    // What is stored is the first version of each and the new one: three human page views at `base`, one bot's.
    const oracle = new WebOracle(
      [...stored, fresh].map((body) => ({
        body,
        late: false,
        event: webEvent(body, base, body.user_agent ?? null),
      })),
    );
    await assertSessions(tally.database.pool, oracle);
    for (const [from, to] of [
      [base, base + MINUTE],
      [base + 60 * MINUTE, base + 61 * MINUTE],
      [base - 60 * MINUTE, base + 120 * MINUTE],
    ])
      await assertSummary(tally.url, oracle, question(from, to), `${(from - base) / MINUTE} min`);
  },
);
