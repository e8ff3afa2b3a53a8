import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHANNEL_RULES, CHANNELS, sourceKindOfHost, sourceKindOfTag } from '../../src/event/channels.ts';
import { deriveDimensions } from '../../src/event/derive.ts';

const SITE = 'https://shop.example.com/p';

function channelOf(pageUrl: string | null, referrer: string | null = null): string | null {
  return deriveDimensions({ pageUrl, referrer, userAgent: null }).channel;
}

// [what the row shows, page_url, referrer, expected channel]: one row at least per rule of
// docs/channels.md, then the rows where two rules compete and the order decides.
const ROWS: ReadonlyArray<readonly [string, string | null, string | null, string | null]> = [
  // 1. Paid Search
  ['cpc from google', `${SITE}?utm_source=google&utm_medium=cpc`, null, 'Paid Search'],
  ['ppc, source as a host', `${SITE}?utm_source=www.bing.com&utm_medium=ppc`, null, 'Paid Search'],
  [
    'paid* medium, search referrer',
    `${SITE}?utm_medium=paidsearch`,
    'https://www.google.co.uk/',
    'Paid Search',
  ],
  ['source first word: google_ads', `${SITE}?utm_source=google_ads&utm_medium=cpc`, null, 'Paid Search'],
  ['gclid alone', `${SITE}?gclid=abc`, 'https://www.google.com/', 'Paid Search'],
  ['msclkid alone', `${SITE}?msclkid=abc`, null, 'Paid Search'],
  // 2. Paid Social
  ['cpc from facebook', `${SITE}?utm_source=facebook&utm_medium=cpc`, null, 'Paid Social'],
  ['paid_social from ig', `${SITE}?utm_source=ig&utm_medium=paid_social`, null, 'Paid Social'],
  [
    'retargeting, social referrer',
    `${SITE}?utm_medium=retargeting`,
    'https://l.facebook.com/',
    'Paid Social',
  ],
  ['ttclid alone', `${SITE}?ttclid=abc`, null, 'Paid Social'],
  // 3. Email
  ['medium email', `${SITE}?utm_source=acme&utm_medium=email`, null, 'Email'],
  ['medium e-mail', `${SITE}?utm_medium=e-mail`, null, 'Email'],
  ['source newsletter', `${SITE}?utm_source=weekly_newsletter`, null, 'Email'],
  ['webmail referrer', SITE, 'https://mail.google.com/mail/u/0/', 'Email'],
  ['Gmail app referrer', SITE, 'android-app://com.google.android.gm/', 'Email'],
  ['outlook web referrer', SITE, 'https://outlook.live.com/', 'Email'],
  // 4. Affiliates
  ['medium affiliate', `${SITE}?utm_source=partnerblog&utm_medium=affiliate`, null, 'Affiliates'],
  ['source affiliates', `${SITE}?utm_source=affiliates`, null, 'Affiliates'],
  // 5. Display
  ['medium display', `${SITE}?utm_source=criteo&utm_medium=display`, null, 'Display'],
  ['medium banner', `${SITE}?utm_medium=banner`, null, 'Display'],
  ['cpm, unknown source', `${SITE}?utm_source=adnet&utm_medium=cpm`, null, 'Display'],
  ['cpc, unknown source: paid elsewhere', `${SITE}?utm_source=taboola&utm_medium=cpc`, null, 'Display'],
  ['dclid alone', `${SITE}?dclid=abc`, null, 'Display'],
  // 6. Organic Search
  ['google referrer', SITE, 'https://www.google.com/', 'Organic Search'],
  ['google country domain', SITE, 'https://www.google.co.uk/', 'Organic Search'],
  ['google.com.au', SITE, 'https://google.com.au/search?q=x', 'Organic Search'],
  ['bing', SITE, 'https://www.bing.com/search?q=x', 'Organic Search'],
  ['duckduckgo', SITE, 'https://duckduckgo.com/', 'Organic Search'],
  ['yahoo.co.jp', SITE, 'https://search.yahoo.co.jp/', 'Organic Search'],
  ['yandex.ru', SITE, 'https://yandex.ru/search/', 'Organic Search'],
  ['baidu', SITE, 'https://www.baidu.com/', 'Organic Search'],
  ['ecosia', SITE, 'https://www.ecosia.org/', 'Organic Search'],
  ['brave search', SITE, 'https://search.brave.com/', 'Organic Search'],
  ['source google, no medium', `${SITE}?utm_source=google`, null, 'Organic Search'],
  ['medium organic', `${SITE}?utm_source=acme&utm_medium=organic`, null, 'Organic Search'],
  // 7. Organic Social
  ['m.facebook.com', SITE, 'https://m.facebook.com/', 'Organic Social'],
  ['l.facebook.com', SITE, 'https://l.facebook.com/l.php?u=x', 'Organic Social'],
  ['lm.facebook.com', SITE, 'https://lm.facebook.com/', 'Organic Social'],
  ['t.co', SITE, 'https://t.co/abc', 'Organic Social'],
  ['x.com', SITE, 'https://x.com/someone', 'Organic Social'],
  ['linkedin', SITE, 'https://www.linkedin.com/feed/', 'Organic Social'],
  ['lnkd.in', SITE, 'https://lnkd.in/abc', 'Organic Social'],
  ['instagram', SITE, 'https://l.instagram.com/', 'Organic Social'],
  ['reddit', SITE, 'https://old.reddit.com/r/x', 'Organic Social'],
  ['youtube', SITE, 'https://www.youtube.com/', 'Organic Social'],
  ['tiktok', SITE, 'https://www.tiktok.com/', 'Organic Social'],
  ['pinterest country domain', SITE, 'https://www.pinterest.co.uk/', 'Organic Social'],
  ['hacker news', SITE, 'https://news.ycombinator.com/item?id=1', 'Organic Social'],
  ['source fb', `${SITE}?utm_source=fb`, null, 'Organic Social'],
  ['medium social', `${SITE}?utm_source=acme&utm_medium=social`, null, 'Organic Social'],
  ['medium social-network', `${SITE}?utm_medium=social-network`, null, 'Organic Social'],
  // 8. Referral
  ['another site', SITE, 'https://blog.other.org/post', 'Referral'],
  ['Google product, not search', SITE, 'https://docs.google.com/document/d/1', 'Referral'],
  ['unknown source tag', `${SITE}?utm_source=partner`, null, 'Referral'],
  ['only a campaign tag', `${SITE}?utm_campaign=spring`, null, 'Referral'],
  ['medium referral', `${SITE}?utm_medium=referral`, null, 'Referral'],
  ['brand-like name on another domain', SITE, 'https://notgoogle.com/', 'Referral'],
  ['x on another TLD is not x.com', SITE, 'https://x.org/', 'Referral'],
  ['referrer without page_url', null, 'https://blog.other.org/', 'Referral'],
  // 9. Direct
  ['no referrer, no tags', SITE, null, 'Direct'],
  ['own site', SITE, 'https://shop.example.com/other', 'Direct'],
  ['own site, www. and bare host', 'https://x.com/a', 'https://www.x.com/b', 'Direct'],
  ['unparsable referrer', SITE, 'not a url', 'Direct'],
  ['unparsable referrer, no page_url', null, 'not a url', 'Direct'],
  ['empty tag values', `${SITE}?utm_source=&utm_medium=%20`, null, 'Direct'],
  // null
  ['nothing at all', null, null, null],
  // Order conflicts: the earlier rule wins.
  [
    'Paid Search over Email (cpc google newsletter)',
    `${SITE}?utm_source=google&utm_medium=cpc_newsletter`,
    null,
    'Paid Search',
  ],
  ['Email over Organic Search (google + email)', `${SITE}?utm_source=google&utm_medium=email`, null, 'Email'],
  ['Email over Display (email banner)', `${SITE}?utm_medium=email_banner`, null, 'Email'],
  ['Affiliates over Display', `${SITE}?utm_source=affiliate&utm_medium=banner`, null, 'Affiliates'],
  [
    'Display over Organic Search (google display)',
    `${SITE}?utm_source=google&utm_medium=display`,
    null,
    'Display',
  ],
  [
    'Organic Search over Organic Social',
    `${SITE}?utm_source=google&utm_medium=social`,
    null,
    'Organic Search',
  ],
  ['Paid Search click id over a social tag', `${SITE}?utm_source=facebook&gclid=1`, null, 'Paid Search'],
  ['utm_source overrides the referrer', `${SITE}?utm_source=partner`, 'https://www.google.com/', 'Referral'],
  [
    'utm_source overrides the referrer (social)',
    `${SITE}?utm_source=twitter`,
    'https://www.google.com/',
    'Organic Social',
  ],
  ['webmail before the google brand', SITE, 'https://mail.google.com/', 'Email'],
  // Case-insensitivity of tags and hosts (values themselves are kept as given).
  ['CPC / Google', `${SITE}?utm_source=Google&utm_medium=CPC`, null, 'Paid Search'],
  ['EMAIL', `${SITE}?utm_medium=EMAIL`, null, 'Email'],
  ['Newsletter source', `${SITE}?utm_source=Newsletter`, null, 'Email'],
  ['upper-case referrer host', SITE, 'https://WWW.GOOGLE.DE/', 'Organic Search'],
  ['Facebook source', `${SITE}?utm_source=Facebook&utm_medium=Paid`, null, 'Paid Social'],
];

for (const [name, pageUrl, referrer, expected] of ROWS) {
  test(`channel: ${name} → ${expected}`, () => {
    assert.equal(channelOf(pageUrl, referrer), expected);
  });
}

test('every channel is reached by some row, and the rule table names each channel once', () => {
  const reached = new Set(ROWS.map((r) => r[3]));
  for (const c of CHANNELS) assert.ok(reached.has(c), c);
  assert.deepEqual(
    CHANNEL_RULES.map((r) => r.channel),
    [
      'Paid Search',
      'Paid Social',
      'Email',
      'Affiliates',
      'Display',
      'Organic Search',
      'Organic Social',
      'Referral',
      'Direct',
    ],
  );
});

test('host matching: domains before brands, registrable-ish suffixes', () => {
  const cases: ReadonlyArray<readonly [string, string | null]> = [
    ['google.com', 'search'],
    ['www.google.co.uk', 'search'],
    ['images.google.com.br', 'search'],
    ['mail.google.com', 'email'],
    ['drive.google.com', null],
    ['t.co', 'social'],
    ['m.facebook.com', 'social'],
    ['facebook.co', 'social'],
    ['x.com', 'social'],
    ['mobile.x.com', 'social'],
    ['x.co', null],
    ['example.com', null],
    ['google', null],
    ['co.uk', null],
    ['', null],
    ['.', null],
    ['localhost', null],
    ['[::1]', null],
    ['192.168.0.1', null],
  ];
  for (const [host, kind] of cases) assert.equal(sourceKindOfHost(host), kind, host);
});

test('utm_source names: first word, known short names, hosts and URLs', () => {
  const cases: ReadonlyArray<readonly [string, string | null]> = [
    ['google', 'search'],
    ['google-ads', 'search'],
    ['ig', 'social'],
    ['x', 'social'],
    ['linkedin_post', 'social'],
    ['gmail', 'email'],
    ['m.facebook.com', 'social'],
    ['https://www.bing.com/search?q=1', 'search'],
    ['partner', null],
    ['spring_google', null],
    ['', null],
  ];
  for (const [source, kind] of cases) assert.equal(sourceKindOfTag(source), kind, source);
});
