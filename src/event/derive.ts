import { CLICK_ID_PARAMS, classifyChannel, clickIdKind } from './channels.ts';
import type { TallyEvent } from './types.ts';
import { parseUserAgent } from './user-agent.ts';

/**
 * What Tally derives from an event's page_url, referrer and user_agent, once, in the writer both
 * modes share (src/store/batch-writer.ts), and stores beside the raw event (migration 010).
 * Every field is null when the event gives nothing to derive it from.
 */
export interface DerivedDimensions {
  /** page_url's host, lower case, without port. */
  hostname: string | null;
  /** page_url's path (query string and fragment stripped), so UTM tags don't split a page. */
  path: string | null;
  /** The referrer's host, lower case; null when there is none or it is the page's own host. */
  referrerHost: string | null;
  utmSource: string | null;
  utmMedium: string | null;
  utmCampaign: string | null;
  utmTerm: string | null;
  utmContent: string | null;
  /** A channel of the documented rule table (Direct, Organic Search, Paid, Social, Email, Referral, …). */
  channel: string | null;
  browser: string | null;
  os: string | null;
  /** 'desktop' | 'mobile' | 'tablet'; null without a user agent. */
  device: string | null;
  bot: boolean;
}

/** Derives the dimensions of one event. Pure; never throws on any input. */
export function deriveDimensions(
  e: Pick<TallyEvent, 'pageUrl' | 'referrer' | 'userAgent'>,
): DerivedDimensions {
  const page = parsePage(e.pageUrl);
  const referrerHost = referrerHostOf(e.referrer, page.hostname);
  const query = TAGGED_QUERY.test(page.query) ? new URLSearchParams(page.query) : null;
  const utmSource = utmTag(query, 'utm_source');
  const utmMedium = utmTag(query, 'utm_medium');
  const utmCampaign = utmTag(query, 'utm_campaign');
  const utmTerm = utmTag(query, 'utm_term');
  const utmContent = utmTag(query, 'utm_content');
  const channel = classifyChannel({
    referrerHost,
    utmSource,
    utmMedium,
    tagged: (utmSource ?? utmMedium ?? utmCampaign ?? utmTerm ?? utmContent) !== null,
    clickId: query === null ? null : clickIdKind(query),
    located: e.pageUrl !== null || e.referrer !== null,
  });
  const ua = parseUserAgent(e.userAgent);
  return {
    hostname: page.hostname,
    path: page.path,
    referrerHost,
    utmSource,
    utmMedium,
    utmCampaign,
    utmTerm,
    utmContent,
    channel,
    browser: ua.browser,
    os: ua.os,
    device: ua.device,
    bot: ua.bot,
  };
}

/**
 * deriveDimensions through a bounded memo keyed by the three strings it reads (nested maps: no key
 * string is built per event). Traffic repeats them (a site's pages, a few referrers and browsers),
 * and the processor derives every event it stores: the URL parsing, the channel rules and the
 * object made per event were ~5 % of a worker's CPU and some of its garbage (issue 24). The result
 * depends on the strings alone, so the memo cannot change an answer; it is shared by every event
 * with those strings, hence frozen. Past MEMO_MAX entries the memo starts again empty: a stream of
 * ever new URLs costs three map lookups per event more than no memo.
 */
export function deriveDimensionsMemo(
  e: Pick<TallyEvent, 'pageUrl' | 'referrer' | 'userAgent'>,
): Readonly<DerivedDimensions> {
  let byReferrer = memo.get(e.pageUrl);
  if (byReferrer === undefined) {
    byReferrer = new Map();
    memo.set(e.pageUrl, byReferrer);
  }
  let byAgent = byReferrer.get(e.referrer);
  if (byAgent === undefined) {
    byAgent = new Map();
    byReferrer.set(e.referrer, byAgent);
  }
  let derived = byAgent.get(e.userAgent);
  if (derived === undefined) {
    if (memoSize >= MEMO_MAX) {
      memo.clear();
      memoSize = 0;
      return deriveDimensionsMemo(e);
    }
    derived = Object.freeze(deriveDimensions(e));
    byAgent.set(e.userAgent, derived);
    memoSize++;
  }
  return derived;
}

// Entries hold only strings events carry, each within the event's limits: 4,096 entries of URLs
// and user agents of a few hundred characters are a few MB; of the longest allowed, ~40 MB.
const MEMO_MAX = 4096;
const memo = new Map<string | null, Map<string | null, Map<string | null, Readonly<DerivedDimensions>>>>();
let memoSize = 0;

/** How many results the memo holds (never more than MEMO_MAX). */
export function derivedMemoSize(): number {
  return memoSize;
}

// Most query strings carry no tag and no click id; parsing them would be wasted on the write path.
// URLSearchParams decodes names too, so an escaped underscore (`utm%5Fsource`) still counts.
const TAGGED_QUERY = new RegExp(['utm(?:_|%5f)', ...CLICK_ID_PARAMS].join('|'), 'i');

interface Page {
  hostname: string | null;
  path: string | null;
  /** The query string without its `?`; '' when there is none. */
  query: string;
}

const NO_PAGE: Page = { hostname: null, path: null, query: '' };

function parsePage(pageUrl: string | null): Page {
  if (pageUrl === null) return NO_PAGE;
  const url = URL.parse(pageUrl); // null where new URL() would throw: no exceptions on the hot path
  if (url !== null && url.hostname !== '') {
    // Special schemes (http, https, …) always have a path of at least '/'; give others the same.
    return { hostname: url.hostname.toLowerCase(), path: url.pathname || '/', query: url.search.slice(1) };
  }
  // A relative, unparsable or host-less page_url ('/pricing?plan=pro', 'example.com/a',
  // 'localhost:3000/a' – which URL reads as scheme 'localhost:' –, 'about:blank'): the text before
  // the query string or fragment is the path, and the query string still carries its tags.
  const end = pageUrl.search(/[?#]/);
  if (end === -1) return { hostname: null, path: pageUrl, query: '' };
  const path = end === 0 ? null : pageUrl.slice(0, end); // '?utm_source=x' names no page
  const query = pageUrl[end] === '?' ? pageUrl.slice(end + 1).split('#', 1)[0] : '';
  return { hostname: null, path, query };
}

function referrerHostOf(referrer: string | null, pageHost: string | null): string | null {
  if (referrer === null) return null;
  const host = URL.parse(referrer)?.hostname.toLowerCase() ?? '';
  if (host === '') return null;
  // A visitor moving between www.x.com and x.com has not been referred by another site.
  if (pageHost !== null && withoutWww(host) === withoutWww(pageHost)) return null;
  return host;
}

function withoutWww(host: string): string {
  return host.startsWith('www.') ? host.slice(4) : host;
}

const MAX_TAG_LENGTH = 256;

function utmTag(query: URLSearchParams | null, name: string): string | null {
  const raw = query?.get(name);
  if (raw === undefined || raw === null) return null;
  // TRICKY: decoding can yield what PostgreSQL text refuses (a NUL from %00), and cutting can
  // split a surrogate pair; either would fail the whole batch transaction, so both are removed.
  let value = raw.replaceAll('\u0000', '').trim();
  if (value === '') return null;
  if (value.length > MAX_TAG_LENGTH) {
    const last = value.charCodeAt(MAX_TAG_LENGTH - 1);
    const splitsPair = last >= 0xd800 && last <= 0xdbff;
    value = value.slice(0, splitsPair ? MAX_TAG_LENGTH - 1 : MAX_TAG_LENGTH).trimEnd();
  }
  return value;
}
