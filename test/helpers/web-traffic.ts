import { deriveDimensions } from '../../src/event/derive.ts';
import type { WebEvent } from '../query/web-fixtures.ts';
import { prng } from './oracle.ts';
import type { SessionizerEvent } from './sessionizer.ts';

/**
 * Generated web traffic for the end-to-end oracle suites of issue 20: users with a browser (or a
 * bot) making visits that start from a source (search, social, a newsletter link, an ad click,
 * direct), pages with UTM tags, explicit session ids for some, duplicates, and a second wave of
 * late events written to fall between visits already stored: merging two, inserting a new one
 * between two, moving a visit's start earlier (so its source changes), extending an explicit
 * session across a long gap. The expected answers come from `WebEvent`s: the body's fields as
 * Tally would store them, dimensions by the real derivation (it has its own unit tests; here the
 * point is counting).
 */

export const MINUTE = 60_000;
export const TIMEOUT_MS = 30 * MINUTE;

/** One unique event: what is sent, and what the oracle expects Tally to store of it. */
export interface Generated {
  body: Record<string, unknown>;
  /** The User-Agent header of a /v1/collect beacon (the body then has no user_agent). */
  collectUserAgent?: string;
  /** Sent in the second wave, after the first is stored. */
  late: boolean;
  event: WebEvent;
}

export interface Traffic {
  /** Every unique event (first wave and late ones). */
  all: Generated[];
  /** First wave for /v1/events: shuffled, with duplicates mixed in. */
  bulk: Record<string, unknown>[];
  /** First wave for /v1/collect, one beacon each. */
  collect: Generated[];
  /** Second wave: late events plus duplicates of first-wave events, shuffled. */
  late: Record<string, unknown>[];
  /** How many of `bulk` and `late` are re-sends. */
  resent: { bulk: number; late: number };
  /** How many late events merge two visits, insert one, or move a start (for the suites' sanity checks). */
  kinds: { merge: number; insert: number; earlier: number; tie: number; session: number };
}

const UAS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0',
];
const BOT_UAS = [
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)',
  'curl/8.5.0',
  'python-requests/2.31.0',
];
const COUNTRIES = ['US', 'us', 'DE', 'FR', 'gb', 'IN', 'BR', null];
const HOST = 'shop.example';
const PATHS = ['/', '/pricing', '/blog/a', '/blog/b', '/docs', '/Docs/Install', '/cart', "/it's%_x"];
/** Where a visit comes from: the first page's query string and the referrer. */
const SOURCES: { query: string; referrer: string | null }[] = [
  { query: '', referrer: null },
  { query: '', referrer: null },
  { query: '', referrer: 'https://www.google.com/search?q=tally' },
  { query: '', referrer: 'https://www.bing.com/' },
  { query: '', referrer: 'https://news.ycombinator.com/item?id=1' },
  { query: '', referrer: 'https://t.co/abc' },
  { query: '', referrer: 'https://blog.other.example/post' },
  { query: '', referrer: `https://www.${HOST}/from-www` },
  { query: '?utm_source=newsletter&utm_medium=email&utm_campaign=spring', referrer: null },
  { query: '?utm_source=Newsletter&utm_medium=email&utm_campaign=autumn&utm_content=b', referrer: null },
  { query: '?utm_source=google&utm_medium=cpc&utm_campaign=brand&utm_term=tally', referrer: null },
  { query: '?gclid=abc123', referrer: 'https://www.google.com/' },
  { query: '?utm_source=facebook&utm_medium=paid_social', referrer: 'https://m.facebook.com/' },
  { query: '?ref=partner', referrer: 'https://partner.example/deals' },
];
const OTHER_TYPES = ['click', 'click', 'signup', 'purchase', 'video.play'];

export interface TrafficOptions {
  seed: number;
  users: number;
  /** Epoch ms; every event is between `now - 8 h` and `now - 5 min`. */
  now: number;
  /** Users (their indexes) whose events all go through /v1/collect. */
  collectUsers?: number;
}

interface UserState {
  id: string;
  ua: string | null;
  bot: boolean;
  country: string | null;
  /** This user's generated events so far, in time order per wave. */
  events: Generated[];
}

export function generateTraffic(o: TrafficOptions): Traffic {
  const random = prng(o.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const start = Math.floor((o.now - 8 * 60 * MINUTE) / MINUTE) * MINUTE;
  const end = o.now - 5 * MINUTE;
  const run = `w${o.seed}`;
  let n = 0;
  const all: Generated[] = [];
  const collect: Generated[] = [];
  const collectUsers = o.collectUsers ?? 0;
  let lateWave = false;

  const make = (
    u: UserState,
    ts: number,
    fields: Record<string, unknown>,
    viaCollect: boolean,
    idPrefix = '',
  ) => {
    const body: Record<string, unknown> = {
      event_id: `${run}-${idPrefix}${n++}`,
      user_id: u.id,
      // Both accepted timestamp forms.
      timestamp: random() < 0.5 ? ts : new Date(ts).toISOString(),
      ...fields,
    };
    // A human browser now and then sends one event a bot detector flags (a link preview, a
    // prefetch): its visit becomes a bot visit while its other events stay human.
    let ua = u.ua;
    if (!u.bot && ua !== null && random() < 0.004) ua = BOT_UAS[0];
    if (ua !== null && !viaCollect) body.user_agent = ua;
    if (u.country !== null) body.country = u.country;
    const g: Generated = { body, late: lateWave, event: webEvent(body, ts, ua) };
    if (viaCollect && ua !== null) g.collectUserAgent = ua;
    all.push(g);
    u.events.push(g);
    if (viaCollect) collect.push(g);
    return g;
  };

  const pageFields = (path: string, query: string, referrer: string | null, sessionId: string | null) => ({
    type: 'page_view',
    page_url: `https://${HOST}${path}${query}`,
    ...(referrer === null ? {} : { referrer }),
    ...(sessionId === null ? {} : { session_id: sessionId }),
  });
  const otherFields = (path: string, sessionId: string | null) => {
    const type = pick(OTHER_TYPES);
    return {
      type,
      ...(type === 'click' ? { page_url: `https://${HOST}${path}` } : {}),
      ...(type === 'purchase' ? { properties: { plan: pick(['pro', 'free']) } } : {}),
      ...(sessionId === null ? {} : { session_id: sessionId }),
    };
  };

  const users: UserState[] = [];
  for (let i = 0; i < o.users; i++) {
    const bot = i % 20 === 7; // 5 %
    const u: UserState = {
      id: `${run}-u${i}`,
      // Server-side senders without a user agent, too.
      ua: bot ? pick(BOT_UAS) : random() < 0.1 ? null : pick(UAS),
      bot,
      country: pick(COUNTRIES),
      events: [],
    };
    users.push(u);
    const viaCollect = i < collectUsers && u.ua !== null;
    const explicit = random() < 0.15;
    let t = start + int(0, 90) * MINUTE + int(0, 59_999);
    for (let visit = 0; t < end; visit++) {
      // Some session ids are used by several users: still one visit per (user, session id).
      const sessionId =
        !explicit || random() < 0.2 ? null : random() < 0.5 ? `${u.id}-s${visit}` : `s-${visit}`;
      const source = pick(SOURCES);
      let path = pick(PATHS);
      make(u, t, pageFields(path, source.query, source.referrer, sessionId), viaCollect);
      const length = random() < 0.35 ? 0 : int(1, 7);
      for (let k = 0; k < length; k++) {
        // Gaps up to the timeout, sometimes exactly it (same visit) or none (a tie on time, broken
        // by event_id: `…-100` sorts before `…-99`); an explicit session survives a long gap.
        const r = random();
        t +=
          r < 0.05
            ? TIMEOUT_MS
            : r < 0.1
              ? 0
              : sessionId !== null && r < 0.2
                ? int(31, 70) * MINUTE
                : int(5, 600) * 1000;
        if (t >= end) break;
        if (random() < 0.7) {
          const from = path;
          path = pick(PATHS);
          make(u, t, pageFields(path, '', `https://${HOST}${from}`, sessionId), viaCollect);
        } else {
          make(u, t, otherFields(path, sessionId), viaCollect);
        }
      }
      // Between visits: just over the timeout (it splits), or much longer.
      t += random() < 0.1 ? TIMEOUT_MS + 1 : int(31, 110) * MINUTE;
    }
  }
  const firstWave = all.length;
  const kinds = { merge: 0, insert: 0, earlier: 0, tie: 0, session: 0 };
  lateWave = true;

  // Late events, written against each human user's first-wave timeline.
  for (const u of users) {
    if (u.bot || collectUsers > users.indexOf(u)) continue;
    const own = u.events.slice().sort((a, b) => a.event.ts - b.event.ts);
    const timed = own.filter((g) => g.event.session_id === null);
    for (let k = 1; k < timed.length; k++) {
      const gap = timed[k].event.ts - timed[k - 1].event.ts;
      const mid = timed[k - 1].event.ts + Math.floor(gap / 2);
      const path = pick(PATHS);
      if (gap > TIMEOUT_MS && gap <= 2 * TIMEOUT_MS && random() < 0.5) {
        // Within the timeout of both neighbours (in the middle, or exactly the timeout after the
        // earlier one: a gap equal to the timeout does not split): two visits become one.
        const ts = random() < 0.3 ? timed[k - 1].event.ts + TIMEOUT_MS : mid;
        make(u, ts, random() < 0.6 ? pageFields(path, '', null, null) : otherFields(path, null), false);
        kinds.merge++;
      } else if (gap > 2 * TIMEOUT_MS + 2 * MINUTE && random() < 0.4) {
        // More than the timeout from both: a new visit between two.
        make(u, mid, pageFields(path, pick(SOURCES).query, pick(SOURCES).referrer, null), false);
        kinds.insert++;
      }
    }
    const before = random();
    if (timed.length > 0 && before < 0.3) {
      // Before the user's first visit, within the timeout: it now starts earlier, from another source.
      const source = pick(SOURCES);
      make(
        u,
        timed[0].event.ts - int(1, 29) * MINUTE,
        pageFields(pick(PATHS), source.query, source.referrer, null),
        false,
      );
      kinds.earlier++;
    } else if (timed.length > 0 && before < 0.5) {
      // At the very time of the user's first event, with an event_id that sorts before every
      // other ('!' < digits in code units): it becomes the visit's first event, and its source
      // and entry page the visit's.
      const source = pick(SOURCES);
      make(u, timed[0].event.ts, pageFields(pick(PATHS), source.query, source.referrer, null), false, '!');
      kinds.tie++;
    }
    const session = own.find((g) => g.event.session_id !== null);
    if (session !== undefined && random() < 0.5) {
      // An explicit session is one visit whatever the gap: later, or earlier with a new entry page.
      const sessionId = session.event.session_id;
      if (random() < 0.5) {
        make(
          u,
          Math.min(end, session.event.ts + int(35, 90) * MINUTE),
          otherFields(pick(PATHS), sessionId),
          false,
        );
      } else {
        make(u, session.event.ts - int(35, 90) * MINUTE, pageFields(pick(PATHS), '', null, sessionId), false);
      }
      kinds.session++;
    }
  }

  const bulkOnce = all.slice(0, firstWave).filter((g) => g.collectUserAgent === undefined);
  const bulk = bulkOnce.map((g) => g.body);
  for (const g of bulkOnce) if (random() < 0.08) bulk.push(g.body);
  const resentBulk = bulk.length - bulkOnce.length;
  const late = all.slice(firstWave).map((g) => g.body);
  const lateOnce = late.length;
  for (const g of all.slice(0, firstWave))
    if (g.collectUserAgent === undefined && random() < 0.05) late.push(g.body);
  for (const g of all.slice(firstWave)) if (random() < 0.2) late.push(g.body);
  shuffle(bulk, random);
  shuffle(late, random);
  return {
    all,
    bulk,
    collect,
    late,
    resent: { bulk: resentBulk, late: late.length - lateOnce },
    kinds,
  };
}

function shuffle<T>(list: T[], random: () => number): void {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
}

/** What Tally stores of one event, from its body and the user agent it ends up with. */
export function webEvent(body: Record<string, unknown>, ts: number, userAgent: string | null): WebEvent {
  const text = (k: string) => (typeof body[k] === 'string' ? body[k] : null);
  const d = deriveDimensions({ pageUrl: text('page_url'), referrer: text('referrer'), userAgent });
  const props = body.properties as Record<string, string> | undefined;
  return {
    event_id: body.event_id as string,
    user_id: body.user_id as string,
    type: body.type as string,
    ts,
    session_id: text('session_id'),
    properties: props ?? null,
    path: d.path,
    hostname: d.hostname,
    referrer_host: d.referrerHost,
    channel: d.channel,
    utm_source: d.utmSource,
    utm_medium: d.utmMedium,
    utm_campaign: d.utmCampaign,
    utm_term: d.utmTerm,
    utm_content: d.utmContent,
    browser: d.browser,
    os: d.os,
    device: d.device,
    country: text('country')?.toUpperCase() ?? null,
    is_bot: d.bot,
  };
}

/** The reference sessionizer's view of an oracle event (test/helpers/sessionizer.ts). */
export function sessionizerEvent(e: WebEvent, project = 'default'): SessionizerEvent {
  return {
    project,
    userId: e.user_id,
    ts: e.ts,
    type: e.type,
    eventId: e.event_id,
    sessionId: e.session_id,
    path: e.path,
    isBot: e.is_bot,
    hostname: e.hostname,
    referrerHost: e.referrer_host,
    channel: e.channel,
    utmSource: e.utm_source,
    utmMedium: e.utm_medium,
    utmCampaign: e.utm_campaign,
    utmTerm: e.utm_term,
    utmContent: e.utm_content,
    browser: e.browser,
    os: e.os,
    device: e.device,
    country: e.country,
  };
}
