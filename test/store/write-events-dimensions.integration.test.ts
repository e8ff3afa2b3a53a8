import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { deriveDimensions } from '../../src/event/derive.ts';
import type { TallyEvent } from '../../src/event/types.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { BatchProcessor } from '../../src/process/batch-processor.ts';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { toTallyEvent, type OracleEvent } from '../helpers/oracle.ts';
import { expectedRollups, storedState } from '../helpers/stored-state.ts';

// TRICKY: src/event/derive.ts's bot rule is another change of issue 20; this suite pins which
// events are bots with its own rule over the real derivation, so it tests the writer alone.
const BOT_UA = 'TestBot/1.0 (+https://bots.example)';
const derive = (e: TallyEvent) => ({ ...deriveDimensions(e), bot: e.userAgent === BOT_UA });
const HUMAN_UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36';
const T0 = Date.UTC(2024, 2, 1, 10);

function event(o: OracleEvent, extra: Partial<TallyEvent>): TallyEvent {
  return { ...toTallyEvent(o), ...extra };
}

/** Humans u-h1, u-h2; bot u-b (only bot events); and one bot event of the human u-h1. */
function batch(): { all: TallyEvent[]; humans: OracleEvent[] } {
  const humans: OracleEvent[] = [
    {
      event_id: 'h1',
      type: 'page_view',
      user_id: 'u-h1',
      ts: T0,
      page_url: 'https://Shop.Example/a?utm_source=news#top',
    },
    { event_id: 'h2', type: 'click', user_id: 'u-h1', ts: T0 + 60_000 },
    {
      event_id: 'h3',
      type: 'page_view',
      user_id: 'u-h2',
      ts: T0 + 3_600_000,
      page_url: 'https://shop.example/b',
    },
  ];
  const bots: OracleEvent[] = [
    { event_id: 'b1', type: 'page_view', user_id: 'u-b', ts: T0, page_url: 'https://shop.example/a' },
    {
      event_id: 'b2',
      type: 'page_view',
      user_id: 'u-b',
      ts: T0 + 86_400_000,
      page_url: 'https://shop.example/c',
    },
    { event_id: 'b3', type: 'click', user_id: 'u-h1', ts: T0 + 120_000 },
  ];
  return {
    humans,
    all: [
      ...humans.map((o) =>
        event(o, { userAgent: HUMAN_UA, country: 'DE', referrer: 'https://news.example/x' }),
      ),
      ...bots.map((o) => event(o, { userAgent: BOT_UA, country: 'US' })),
    ],
  };
}

async function writer(t: TestContext, retentionDays?: number) {
  const db = await startTestPostgres(t);
  const w = new BatchWriter({
    pool: db.pool,
    partitions: new RawPartitions(db.pool, retentionDays),
    storeRaw: true,
    sessionTimeoutMs: 17 * 60_000,
    derive,
  });
  return { pool: db.pool, writer: w };
}

interface RawRow {
  event_id: string;
  user_agent: string | null;
  country: string | null;
  hostname: string | null;
  path: string | null;
  referrer_host: string | null;
  utm_source: string | null;
  utm_medium: string | null;
  utm_campaign: string | null;
  utm_term: string | null;
  utm_content: string | null;
  channel: string | null;
  browser: string | null;
  os: string | null;
  device: string | null;
  is_bot: boolean;
}

test('bot events are stored raw with is_bot and counted in no rollup; the derived columns are stored', async (t) => {
  const { pool, writer: w } = await writer(t);
  const metrics = createMetrics(undefined, { defaults: false });
  const processor = new BatchProcessor({ writer: w, metrics, logger: pino({ level: 'silent' }) });
  const policy = { maxRetryTimeMs: 0, minDelayMs: 1, maxDelayMs: 1 };
  const botsCounted = async () => (await metrics.botEvents.get()).values[0]?.value ?? 0;
  const { all, humans } = batch();
  const result = await processor.process({ events: all }, policy);
  assert.equal(result.inserted, 6);
  assert.equal(result.insertedBots, 3);
  assert.equal(await botsCounted(), 3, 'tally_bot_events_total');

  const state = await storedState(pool);
  const expected = expectedRollups(humans);
  assert.deepEqual(state.events, expected.events, 'rollup_events: humans only');
  assert.deepEqual(state.pages, expected.pages, 'rollup_pages: humans only');
  assert.deepEqual(state.users, expected.users, 'user sets: humans only');
  assert.equal(state.userBitCount, expected.users.length);
  assert.equal(state.raw.length, 6, 'every event is stored raw, bots too');

  const { rows } = await pool.query<RawRow>(
    `SELECT event_id, user_agent, country, hostname, path, referrer_host, utm_source, utm_medium,
            utm_campaign, utm_term, utm_content, channel, browser, os, device, is_bot
       FROM tally.events ORDER BY event_id`,
  );
  const byId = new Map(all.map((e) => [e.eventId, e]));
  for (const row of rows) {
    const e = byId.get(row.event_id)!;
    const d = derive(e);
    assert.deepEqual(
      row,
      {
        event_id: e.eventId,
        user_agent: e.userAgent,
        country: e.country,
        hostname: d.hostname,
        path: d.path,
        referrer_host: d.referrerHost,
        utm_source: d.utmSource,
        utm_medium: d.utmMedium,
        utm_campaign: d.utmCampaign,
        utm_term: d.utmTerm,
        utm_content: d.utmContent,
        channel: d.channel,
        browser: d.browser,
        os: d.os,
        device: d.device,
        is_bot: d.bot,
      },
      row.event_id,
    );
  }
  // What the derivation gives today, whatever else it learns: the page's host and path.
  const h1 = rows.find((r) => r.event_id === 'h1')!;
  assert.equal(h1.hostname, 'shop.example');
  assert.equal(h1.path, '/a');
  assert.deepEqual(
    rows.filter((r) => r.is_bot).map((r) => r.event_id),
    ['b1', 'b2', 'b3'],
  );

  // Replayed: nothing is fresh, nothing counted twice, no bot counted as committed again.
  const again = await processor.process({ events: all }, policy);
  assert.equal(again.inserted, 0);
  assert.equal(again.insertedBots, 0);
  assert.equal(await botsCounted(), 3, 'tally_bot_events_total counts committed bots once');
  assert.deepEqual(await storedState(pool), state);
});

test('tally.write_events refreshes the visits of the fresh events stored raw, before the shared rows, with the session timeout', async (t) => {
  // Retention of 1 day: the events of 2024 are counted but not stored raw (no visits from them).
  const { pool, writer: w } = await writer(t, 1);
  // A stand-in (in this test's own database) records the calls of tally.refresh_sessions, so the
  // test sees what it is given and that every statement before it has run; the real function is
  // tested in test/store/sessions*.integration.test.ts.
  await pool.query(`
    CREATE TABLE public.refresh_calls (project text[], user_id text[], ts float8[], session_id text[],
                                       event_id text[], timeout_ms float8, raw_cutoff float8,
                                       raw_rows bigint, counted bigint);
    CREATE OR REPLACE FUNCTION tally.refresh_sessions(
      p_take bool[], p_project text[], p_user_id text[], p_ts float8[], p_session_id text[],
      p_event_id text[], p_type text[], p_path text[], p_is_bot bool[],
      p_hostname text[], p_referrer_host text[], p_channel text[], p_utm_source text[], p_utm_medium text[],
      p_utm_campaign text[], p_utm_term text[], p_utm_content text[], p_browser text[], p_os text[],
      p_device text[], p_country text[], p_timeout_ms float8, p_raw_cutoff float8)
    RETURNS void LANGUAGE sql AS $$
      INSERT INTO public.refresh_calls
      SELECT array_agg(x.p ORDER BY x.i), array_agg(x.u ORDER BY x.i), array_agg(x.ts ORDER BY x.i),
             array_agg(x.s ORDER BY x.i), array_agg(x.id ORDER BY x.i), p_timeout_ms, p_raw_cutoff,
             (SELECT count(*) FROM tally.events),
             (SELECT coalesce(sum(count), 0) FROM tally.rollup_events WHERE level = 0)
        FROM unnest(p_take, p_project, p_user_id, p_ts, p_session_id, p_event_id)
             WITH ORDINALITY AS x(take, p, u, ts, s, id, i)
       WHERE x.take
    $$;`);
  const now = Date.now();
  const recent = (o: OracleEvent, extra: Partial<TallyEvent> = {}) => event(o, extra);
  const events = [
    recent({ event_id: 'r1', type: 'page_view', user_id: 'u1', ts: now - 5000 }, { sessionId: 's-1' }),
    recent({ event_id: 'r2', type: 'page_view', user_id: 'u2', ts: now - 4000 }, { userAgent: BOT_UA }),
    recent({ event_id: 'old', type: 'page_view', user_id: 'u3', ts: Date.UTC(2024, 0, 1) }),
  ];
  await w.write({ events });
  const calls = await pool.query<{
    project: string[];
    user_id: string[];
    ts: number[];
    session_id: (string | null)[];
    event_id: string[];
    timeout_ms: number;
    raw_cutoff: number;
    raw_rows: string;
    counted: string;
  }>('SELECT * FROM public.refresh_calls');
  assert.equal(calls.rows.length, 1);
  const call = calls.rows[0];
  // The events stored raw (sorted by event id, as the writer sends them), bots too; not `old`
  // (migration 028: the arrays of the whole batch, with a mask of those taken).
  assert.deepEqual(call.event_id, ['r1', 'r2']);
  assert.deepEqual(call.project, ['default', 'default']);
  assert.deepEqual(call.user_id, ['u1', 'u2']);
  assert.deepEqual(call.ts, [now - 5000, now - 4000]);
  assert.deepEqual(call.session_id, ['s-1', null]);
  assert.equal(call.timeout_ms, 17 * 60_000);
  // The raw cutoff (a retention of 1 day): visits starting before it are recomputed, not merged.
  const cutoffAt = (ms: number) => Math.floor(ms / 86_400_000) * 86_400_000 - 86_400_000;
  assert.ok([cutoffAt(now), cutoffAt(Date.now())].includes(call.raw_cutoff), `cutoff ${call.raw_cutoff}`);
  assert.equal(call.raw_rows, '2', 'raw rows stored before');
  // The counters come after the visits (migration 024): the rows every batch shares are locked last.
  assert.equal(call.counted, '0', 'counters not yet added');

  // A batch with nothing fresh, or nothing stored raw, refreshes nothing.
  await w.write({ events });
  await w.write({
    events: [recent({ event_id: 'old2', type: 'click', user_id: 'u3', ts: Date.UTC(2024, 0, 2) })],
  });
  assert.equal((await pool.query('SELECT 1 FROM public.refresh_calls')).rows.length, 1);
});
