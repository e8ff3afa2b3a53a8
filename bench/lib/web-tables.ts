/**
 * The fixed tables behind the web-analytics data set (bench/web-dataset.ts): user agents,
 * countries, traffic sources. Weights are relative; each table is sampled through its cumulative
 * weights. The `truth` columns say what the generator meant (for the bench's stand-in
 * derivation and for reading results), not what src/event/derive.ts must answer.
 */

export interface UserAgentRow {
  ua: string;
  weight: number;
  browser: string;
  os: string;
  device: 'desktop' | 'mobile' | 'tablet' | null;
  bot: boolean;
}

const CHROME = 'AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0';
const IOS = 'like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)';

/** 17 browser user agents and 4 bots (~1 % of visitors; their long visits make ~2 % of events). */
export const USER_AGENTS: readonly UserAgentRow[] = [
  ua(`Mozilla/5.0 (Windows NT 10.0; Win64; x64) ${CHROME} Safari/537.36`, 22, 'Chrome', 'Windows', 'desktop'),
  ua(
    `Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) ${CHROME} Safari/537.36`,
    9,
    'Chrome',
    'Mac OS',
    'desktop',
  ),
  ua(
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
    5,
    'Safari',
    'Mac OS',
    'desktop',
  ),
  ua(
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0',
    4,
    'Firefox',
    'Windows',
    'desktop',
  ),
  ua(
    `Mozilla/5.0 (Windows NT 10.0; Win64; x64) ${CHROME} Safari/537.36 Edg/126.0.0.0`,
    5,
    'Edge',
    'Windows',
    'desktop',
  ),
  ua(
    'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
    1,
    'Firefox',
    'Linux',
    'desktop',
  ),
  ua(`Mozilla/5.0 (X11; Linux x86_64) ${CHROME} Safari/537.36`, 1, 'Chrome', 'Linux', 'desktop'),
  ua(
    `Mozilla/5.0 (Windows NT 10.0; Win64; x64) ${CHROME} Safari/537.36 OPR/111.0.0.0`,
    1,
    'Opera',
    'Windows',
    'desktop',
  ),
  ua(
    `Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) ${CHROME} Safari/537.36`,
    0.5,
    'Chrome',
    'Chromium OS',
    'desktop',
  ),
  ua(
    `Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 ${IOS} Version/17.5 Mobile/15E148 Safari/604.1`,
    18,
    'Mobile Safari',
    'iOS',
    'mobile',
  ),
  ua(`Mozilla/5.0 (Linux; Android 10; K) ${CHROME} Mobile Safari/537.36`, 15, 'Chrome', 'Android', 'mobile'),
  ua(
    'Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36',
    4,
    'Samsung Browser',
    'Android',
    'mobile',
  ),
  ua(
    `Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 ${IOS} CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1`,
    3,
    'Chrome',
    'iOS',
    'mobile',
  ),
  ua(
    'Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0',
    0.5,
    'Firefox',
    'Android',
    'mobile',
  ),
  ua(
    `Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 ${IOS} Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.37.107;]`,
    1.5,
    'Facebook',
    'iOS',
    'mobile',
  ),
  ua(
    `Mozilla/5.0 (iPad; CPU OS 17_5 ${IOS} Version/17.5 Mobile/15E148 Safari/604.1`,
    2.5,
    'Mobile Safari',
    'iOS',
    'tablet',
  ),
  ua(`Mozilla/5.0 (Linux; Android 13; SM-X710) ${CHROME} Safari/537.36`, 1, 'Chrome', 'Android', 'tablet'),
  bot('Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 0.4, 'Googlebot'),
  bot('Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)', 0.2, 'bingbot'),
  bot('Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)', 0.2, 'AhrefsBot'),
  bot(
    `Mozilla/5.0 (X11; Linux x86_64) ${CHROME.replace('Chrome', 'HeadlessChrome')} Safari/537.36`,
    0.2,
    'Chrome Headless',
  ),
];

function ua(
  s: string,
  weight: number,
  browser: string,
  os: string,
  device: UserAgentRow['device'],
): UserAgentRow {
  return { ua: s, weight, browser, os, device, bot: false };
}
function bot(s: string, weight: number, browser: string): UserAgentRow {
  return { ua: s, weight, browser, os: 'Linux', device: 'desktop', bot: true };
}

/** 50 ISO codes, most visitors first; sampled with a Zipf-like weight (US ~20 %). */
export const COUNTRIES: readonly string[] = (
  'US DE GB IN FR CA BR NL ES IT AU PL JP SE CH MX TR RU ID BE AT KR CN UA DK ' +
  'NO FI PT CZ IE AR ZA SG IL NZ RO HU GR CO PH VN TH MY CL NG EG PK BD HK TW'
).split(' ');

/** How a visit arrived. `utm` is added to the landing page's URL; `referrers` are full URLs. */
export interface SourceRow {
  channel: string;
  weight: number;
  referrers: readonly string[];
  utm?: readonly {
    source: string;
    medium: string;
    campaigns: readonly string[];
    terms?: readonly string[];
  }[];
}

const SEARCH = [
  'https://www.google.com/',
  'https://www.bing.com/',
  'https://duckduckgo.com/',
  'https://search.yahoo.com/',
  'https://yandex.ru/',
];
const SOCIAL = [
  'https://t.co/',
  'https://m.facebook.com/',
  'https://www.reddit.com/',
  'https://www.linkedin.com/',
  'https://l.instagram.com/',
];
const NEWS = [
  'https://news.ycombinator.com/',
  'https://www.theguardian.com/technology',
  'https://github.com/',
  'https://medium.com/',
  'https://www.nytimes.com/section/technology',
  'https://dev.to/',
  'https://stackoverflow.com/questions',
  'https://www.producthunt.com/',
  'https://techcrunch.com/',
  'https://www.bbc.co.uk/news/technology',
];

/**
 * Visit sources. Lists are sampled Zipf-like (first most often). An empty `referrers` list means
 * no referrer. Every utm-tagged source also appears untagged elsewhere, as on real sites.
 */
export const SOURCES: readonly SourceRow[] = [
  { channel: 'Direct', weight: 28, referrers: [] },
  { channel: 'Organic Search', weight: 36, referrers: SEARCH },
  {
    channel: 'Paid Search',
    weight: 5,
    referrers: ['https://www.google.com/'],
    utm: [
      {
        source: 'google',
        medium: 'cpc',
        campaigns: ['brand', 'generic', 'spring_sale'],
        terms: ['web analytics', 'privacy analytics', 'tally'],
      },
    ],
  },
  { channel: 'Organic Social', weight: 6, referrers: SOCIAL },
  {
    channel: 'Organic Social',
    weight: 3,
    referrers: ['https://t.co/'],
    utm: [{ source: 'twitter', medium: 'social', campaigns: ['launch', 'thread'] }],
  },
  {
    channel: 'Paid Social',
    weight: 3,
    referrers: ['https://m.facebook.com/', 'https://www.linkedin.com/'],
    utm: [
      { source: 'facebook', medium: 'cpc', campaigns: ['retargeting', 'lookalike'] },
      { source: 'linkedin', medium: 'cpc', campaigns: ['b2b'] },
    ],
  },
  {
    channel: 'Email',
    weight: 6,
    referrers: [],
    utm: [
      {
        source: 'newsletter',
        medium: 'email',
        campaigns: ['weekly-41', 'weekly-42', 'weekly-43', 'weekly-44'],
      },
      { source: 'hubspot', medium: 'email', campaigns: ['onboarding'] },
    ],
  },
  { channel: 'Referral', weight: 13, referrers: NEWS },
];

export const SEARCH_HOSTS: ReadonlySet<string> = new Set(SEARCH.map((u) => new URL(u).hostname));
export const SOCIAL_HOSTS: ReadonlySet<string> = new Set(SOCIAL.map((u) => new URL(u).hostname));
