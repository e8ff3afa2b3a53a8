/**
 * The channel rule table (docs/channels.md is its readable form; keep the two in step): which
 * marketing channel an event's traffic came from, in the spirit of Google Analytics 4's default
 * channel grouping and Plausible's sources, from the UTM tags, click ids and referrer host.
 */

export const CHANNELS = [
  'Direct',
  'Organic Search',
  'Paid Search',
  'Organic Social',
  'Paid Social',
  'Email',
  'Affiliates',
  'Display',
  'Referral',
] as const;

export type Channel = (typeof CHANNELS)[number];

/** What a referrer host or a utm_source names: a search engine, a social network or a webmail. */
export type SourceKind = 'search' | 'social' | 'email';

/** What the channel rules look at; every string already trimmed, null when absent. */
export interface ChannelSignals {
  /** The referrer's host, already null when it is the page's own site. */
  referrerHost: string | null;
  utmSource: string | null;
  utmMedium: string | null;
  /** Any utm_* tag at all (campaign, term or content count too). */
  tagged: boolean;
  /** The kind of ad-click id in the page's query string (gclid, ttclid, …), if any. */
  clickId: ClickIdKind | null;
  /** The event has a page_url or a referrer (even one that yields no host): then it is at least Direct. */
  located: boolean;
}

export type ClickIdKind = 'search' | 'social' | 'display';

// Ad platforms' auto-tagging: the ad click carries one of these instead of (or beside) UTM tags.
// fbclid is left out on purpose: Facebook adds it to organic outbound links too.
const CLICK_IDS: ReadonlyArray<readonly [string, ClickIdKind]> = [
  ['gclid', 'search'], // Google Ads
  ['gbraid', 'search'],
  ['wbraid', 'search'],
  ['msclkid', 'search'], // Microsoft Advertising (Bing)
  ['ttclid', 'social'], // TikTok Ads
  ['twclid', 'social'], // X (Twitter) Ads
  ['li_fat_id', 'social'], // LinkedIn Ads
  ['dclid', 'display'], // Google Display & Video 360
];

/** The query parameters that are ad-click ids. */
export const CLICK_ID_PARAMS: readonly string[] = CLICK_IDS.map(([param]) => param);

/** The kind of the first ad-click id present in a page's query string. */
export function clickIdKind(query: URLSearchParams): ClickIdKind | null {
  for (const [param, kind] of CLICK_IDS) if (query.has(param)) return kind;
  return null;
}

// A brand (no dot) matches the site's registrable name on any public suffix: `google` matches
// google.com, www.google.co.uk, news.google.de. A domain (with a dot) matches itself and its
// subdomains, and is looked up before brands, so `mail.google.com` is webmail, not search.
// `null` marks a subdomain that is a product, not the brand's search engine (a plain Referral).
const HOSTS: ReadonlyMap<string, SourceKind | null> = new Map([
  ...entries<SourceKind>(
    'search',
    `google bing duckduckgo yahoo yandex baidu ecosia naver seznam qwant startpage kagi sogou
     ya.ru search.brave.com search.aol.com
     com.google.android.googlequicksearchbox`, // android-app:// referrer of the Google app
  ),
  ...entries(null, 'docs drive sites groups play support developers cloud accounts', '.google.com'),
  // YouTube too: there is no separate video channel.
  ...entries<SourceKind>(
    'social',
    `facebook instagram linkedin twitter reddit youtube tiktok pinterest snapchat tumblr quora vk
     weibo whatsapp telegram discord
     t.co x.com fb.com fb.me lnkd.in youtu.be redd.it pin.it t.me threads.net threads.com bsky.app
     mastodon.social news.ycombinator.com`,
  ),
  ...entries<SourceKind>(
    'email',
    `mail.google.com mail.yahoo.com outlook.live.com outlook.office.com outlook.office365.com
     mail.proton.me mail.aol.com mail.yandex.ru e.mail.ru
     com.google.android.gm`, // android-app:// referrer of the Gmail app
  ),
]);

// utm_source values are names, not hosts: its first word (`google_ads` → google, `fb-story` → fb)
// is looked up among these common short names, then among the brands above.
const SOURCE_NAMES: ReadonlyMap<string, SourceKind> = new Map([
  ...entries<SourceKind>('social', 'fb ig yt x tw li meta threads bluesky bsky mastodon hn hackernews'),
  ...entries<SourceKind>('search', 'adwords googleads msn brave'),
  ...entries<SourceKind>('email', 'gmail outlook'),
]);

function entries<K>(kind: K, names: string, suffix = ''): Array<[string, K]> {
  return names
    .split(/\s+/)
    .filter((n) => n !== '')
    .map((n) => [n + suffix, kind]);
}

// Second-level labels under which country domains register names (google.co.uk, yahoo.co.jp,
// google.com.au): a small stand-in for the Public Suffix List, enough for the brands above.
const SECOND_LEVEL = new Set(['co', 'com', 'net', 'org', 'gov', 'edu', 'ac', 'ne', 'or', 'go', 'gob', 'mil']);

/** What a (lower case) host names: a search engine, social network, webmail, or null (anything else). */
export function sourceKindOfHost(host: string): SourceKind | null {
  // Domains (with a dot), most specific first: mail.google.com before the brand google.
  for (let suffix = host; suffix.includes('.'); suffix = suffix.slice(suffix.indexOf('.') + 1)) {
    const kind = HOSTS.get(suffix);
    if (kind !== undefined) return kind;
  }
  const brand = registrableName(host);
  return brand === null ? null : (HOSTS.get(brand) ?? null);
}

function registrableName(host: string): string | null {
  const labels = host.split('.');
  let i = labels.length - 2;
  if (i < 0) return null;
  if (i >= 1 && SECOND_LEVEL.has(labels[i])) i -= 1;
  return labels[i] === '' ? null : labels[i];
}

/** What a (lower case) utm_source names: a host is matched as one, a name by its first word. */
export function sourceKindOfTag(source: string): SourceKind | null {
  if (source.includes('.')) {
    // `google.com`, `m.facebook.com`, even a pasted URL.
    const host = source.replace(/^[a-z][a-z0-9+.-]*:\/\//, '').split(/[/?#:]/, 1)[0];
    return sourceKindOfHost(host);
  }
  const first = words(source)[0] ?? '';
  return SOURCE_NAMES.get(first) ?? HOSTS.get(first) ?? null;
}

const NO_WORDS: readonly string[] = [];

function words(s: string): readonly string[] {
  return s === '' ? NO_WORDS : s.split(/[^a-z0-9]+/).filter((w) => w !== '');
}

const PAID_MEDIUM = /^(.*cp.*|ppc|retargeting|paid.*)$/; // GA4's paid medium pattern
const EMAIL_WORDS = new Set(['email', 'emails', 'mail', 'newsletter', 'newsletters']); // e-mail → e, mail
const AFFILIATE_WORDS = new Set(['affiliate', 'affiliates']);
const DISPLAY_WORDS = new Set(['display', 'banner', 'cpm', 'interstitial', 'expandable']);

/** What the rules read, computed once per event from its {@link ChannelSignals}. */
export interface ChannelFacts {
  medium: string;
  mediumWords: readonly string[];
  sourceWords: readonly string[];
  /** What the source names: utm_source when given (it overrides the referrer), else the referrer host. */
  kind: SourceKind | null;
  paid: boolean;
  clickId: ClickIdKind | null;
  referred: boolean;
  tagged: boolean;
  located: boolean;
}

const anyIn = (list: readonly string[], set: ReadonlySet<string>): boolean => list.some((w) => set.has(w));

/** The rule table, first match wins; docs/channels.md lists the same rows. */
export const CHANNEL_RULES: ReadonlyArray<{ channel: Channel; when: (f: ChannelFacts) => boolean }> = [
  { channel: 'Paid Search', when: (f) => (f.paid && f.kind === 'search') || f.clickId === 'search' },
  { channel: 'Paid Social', when: (f) => (f.paid && f.kind === 'social') || f.clickId === 'social' },
  {
    channel: 'Email',
    when: (f) => anyIn(f.mediumWords, EMAIL_WORDS) || anyIn(f.sourceWords, EMAIL_WORDS) || f.kind === 'email',
  },
  {
    channel: 'Affiliates',
    when: (f) => anyIn(f.mediumWords, AFFILIATE_WORDS) || anyIn(f.sourceWords, AFFILIATE_WORDS),
  },
  {
    channel: 'Display',
    when: (f) => anyIn(f.mediumWords, DISPLAY_WORDS) || f.paid || f.clickId === 'display',
  },
  { channel: 'Organic Search', when: (f) => f.kind === 'search' || f.medium === 'organic' },
  {
    channel: 'Organic Social',
    when: (f) => f.kind === 'social' || f.medium === 'sm' || f.mediumWords.includes('social'),
  },
  { channel: 'Referral', when: (f) => f.referred || f.tagged },
  { channel: 'Direct', when: (f) => f.located },
];

/** The channel of the first matching rule; null only when the event has no page_url, referrer or tag. */
export function classifyChannel(s: ChannelSignals): Channel | null {
  const medium = s.utmMedium?.toLowerCase() ?? '';
  const source = s.utmSource?.toLowerCase() ?? null;
  const facts: ChannelFacts = {
    medium,
    mediumWords: words(medium),
    sourceWords: source === null ? NO_WORDS : words(source),
    kind:
      source !== null
        ? sourceKindOfTag(source)
        : s.referrerHost !== null
          ? sourceKindOfHost(s.referrerHost)
          : null,
    paid: PAID_MEDIUM.test(medium),
    clickId: s.clickId,
    referred: s.referrerHost !== null,
    tagged: s.tagged,
    located: s.located,
  };
  for (const rule of CHANNEL_RULES) if (rule.when(facts)) return rule.channel;
  return null;
}
