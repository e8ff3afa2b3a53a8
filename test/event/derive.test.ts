import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { UAParser } from 'ua-parser-js';
import { CHANNELS } from '../../src/event/channels.ts';
import { deriveDimensions, deriveDimensionsMemo, derivedMemoSize } from '../../src/event/derive.ts';
import type { DerivedDimensions } from '../../src/event/derive.ts';
import { parseUserAgent } from '../../src/event/user-agent.ts';

function derive(pageUrl: string | null, referrer: string | null = null, userAgent: string | null = null) {
  return deriveDimensions({ pageUrl, referrer, userAgent });
}

test('page_url: host lower case without port, path without query string or fragment', () => {
  const cases: ReadonlyArray<readonly [string, string | null, string | null]> = [
    ['https://WWW.Example.COM:8443/A/b?x=1#top', 'www.example.com', '/A/b'],
    ['https://example.com', 'example.com', '/'],
    ['https://example.com/docs/', 'example.com', '/docs/'],
    ['https://example.com/docs?utm_source=x', 'example.com', '/docs'],
    ['https://example.com/a#frag?not-a-query', 'example.com', '/a'],
    ['http://example.com/a/../b/./c', 'example.com', '/b/c'],
    ['https://example.com/caf%C3%A9 menu', 'example.com', '/caf%C3%A9%20menu'],
    ['https://münchen.de/', 'xn--mnchen-3ya.de', '/'],
    ['http://[::1]:3000/x', '[::1]', '/x'],
    ['http://127.0.0.1:8080/x', '127.0.0.1', '/x'],
    ['capacitor://LocalHost', 'localhost', '/'],
    ['/pricing?plan=pro#faq', null, '/pricing'],
    ['/pricing/', null, '/pricing/'],
    ['pricing#faq', null, 'pricing'],
    ['example.com/a?b', null, 'example.com/a'],
    ['localhost:3000/a?b', null, 'localhost:3000/a'],
    ['about:blank', null, 'about:blank'],
    ['?utm_source=x', null, null],
    ['#top', null, null],
    ['http://', null, 'http://'],
  ];
  for (const [pageUrl, hostname, path] of cases) {
    const d = derive(pageUrl);
    assert.deepEqual([d.hostname, d.path], [hostname, path], pageUrl);
  }
  const none = derive(null);
  assert.deepEqual([none.hostname, none.path], [null, null]);
});

test('referrer host: lower case, null when absent, unparsable or the same site', () => {
  const page = 'https://www.shop.com/a';
  const cases: ReadonlyArray<readonly [string | null, string | null, string | null]> = [
    [page, 'https://News.Ycombinator.com:443/item?id=1', 'news.ycombinator.com'],
    [page, null, null],
    [page, 'not a url', null],
    [page, 'google.com', null],
    [page, 'https://www.shop.com/b', null],
    [page, 'https://shop.com/b', null],
    [page, 'https://WWW.SHOP.COM/', null],
    [page, 'https://m.shop.com/', 'm.shop.com'],
    ['https://shop.com/', 'https://www.shop.com/', null],
    ['/relative', 'https://shop.com/', 'shop.com'],
    [null, 'https://Other.org/', 'other.org'],
    [page, 'android-app://com.Google.Android.gm/', 'com.google.android.gm'],
    [page, 'file:///etc/passwd', null],
  ];
  for (const [pageUrl, referrer, expected] of cases) {
    assert.equal(derive(pageUrl, referrer).referrerHost, expected, `${pageUrl} ← ${referrer}`);
  }
});

test('utm tags: decoded, trimmed, empty is null, at most 256 characters, storable', () => {
  const d = derive(
    'https://x.com/?utm_source=News%20Letter&utm_medium=+email+&utm_campaign=spring%2Fsale&utm_term=&utm_content=%20%20#utm_source=no',
  );
  assert.deepEqual(
    [d.utmSource, d.utmMedium, d.utmCampaign, d.utmTerm, d.utmContent],
    ['News Letter', 'email', 'spring/sale', null, null],
  );
  // Relative page URLs carry their tags too; the fragment is not the query string.
  const rel = derive('/landing?utm_campaign=launch&utm_source=hn#x');
  assert.deepEqual([rel.utmSource, rel.utmCampaign], ['hn', 'launch']);
  assert.equal(derive('/landing#?utm_source=hn').utmSource, null);
  // The first of repeated tags; a malformed escape is kept as text rather than failing.
  assert.equal(derive('https://x.com/?utm_source=a&utm_source=b').utmSource, 'a');
  assert.equal(derive('https://x.com/?utm_source=100%25%zz').utmSource, '100%%zz');
  // Names are decoded like values; untagged query strings are skipped, tagged ones are not.
  assert.equal(derive('https://x.com/?utm%5Fsource=a').utmSource, 'a');
  assert.equal(derive('https://x.com/?color=red&size=m').channel, 'Direct');
  assert.equal(derive('https://x.com/?color=red&msclkid=1').channel, 'Paid Search');
  // Case-sensitive parameter names, as every analytics tool reads them.
  assert.equal(derive('https://x.com/?UTM_SOURCE=a').utmSource, null);

  const long = 'a'.repeat(300);
  assert.equal(derive(`https://x.com/?utm_term=${long}`).utmTerm, 'a'.repeat(256));
  // A cut through a surrogate pair drops the half; NUL (which PostgreSQL text refuses) is removed.
  const emoji = encodeURIComponent('a'.repeat(255) + '😀');
  assert.equal(derive(`https://x.com/?utm_term=${emoji}`).utmTerm, 'a'.repeat(255));
  assert.equal(derive('https://x.com/?utm_source=ne%00ws').utmSource, 'news');
});

// Real user agents: [what, UA, browser, os, device, bot, ua-parser's own device type (proves the
// row exercises that branch of the mapping)].
const USER_AGENTS: ReadonlyArray<
  readonly [string, string, string | null, string | null, string | null, boolean, string | undefined]
> = [
  [
    'Chrome on Windows',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
    'Chrome',
    'Windows',
    'desktop',
    false,
    undefined,
  ],
  [
    'Edge on Windows',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51',
    'Edge',
    'Windows',
    'desktop',
    false,
    undefined,
  ],
  [
    'Safari on iPhone',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
    'Mobile Safari',
    'iOS',
    'mobile',
    false,
    'mobile',
  ],
  [
    'Chrome on iPhone',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1',
    'Chrome',
    'iOS',
    'mobile',
    false,
    'mobile',
  ],
  [
    'Safari on iPad',
    'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1',
    'Mobile Safari',
    'iOS',
    'tablet',
    false,
    'tablet',
  ],
  [
    'Chrome on an Android phone',
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
    'Chrome',
    'Android',
    'mobile',
    false,
    'mobile',
  ],
  [
    'Samsung Internet on an Android phone',
    'Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36',
    'Samsung Internet',
    'Android',
    'mobile',
    false,
    'mobile',
  ],
  [
    'Chrome on an Android tablet (Galaxy Tab S9)',
    'Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
    'Chrome',
    'Android',
    'tablet',
    false,
    'tablet',
  ],
  [
    'Firefox on Linux',
    'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
    'Firefox',
    'Linux',
    'desktop',
    false,
    undefined,
  ],
  [
    'Safari on a Mac',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
    'Safari',
    'Mac OS',
    'desktop',
    false,
    undefined,
  ],
  [
    'Googlebot',
    'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
    null,
    null,
    'desktop',
    true,
    undefined,
  ],
  [
    'Googlebot smartphone',
    'Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.118 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
    'Chrome',
    'Android',
    'mobile',
    true,
    'mobile',
  ],
  ['curl', 'curl/8.4.0', null, null, 'desktop', true, undefined],
  ['python-requests', 'python-requests/2.31.0', null, null, 'desktop', true, undefined],
  [
    'Samsung smart TV → desktop',
    'Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36',
    'Samsung Internet',
    'Tizen',
    'desktop',
    false,
    'smarttv',
  ],
  [
    'PlayStation 5 → desktop',
    'Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)',
    'WebKit',
    'PlayStation',
    'desktop',
    false,
    'console',
  ],
  [
    'Tesla car browser → desktop',
    'Mozilla/5.0 (X11; Linux) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Tesla/2024.14.3',
    'Tesla',
    'Linux',
    'desktop',
    false,
    'embedded',
  ],
  [
    'Galaxy Watch → mobile',
    'Mozilla/5.0 (Linux; Android 11; SM-R890) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/2.0 Chrome/87.0.4280.141 Mobile Safari/537.36',
    'Samsung Internet',
    'Android',
    'mobile',
    false,
    'wearable',
  ],
  ['empty', '', null, null, null, false, undefined],
  ['blank', '   ', null, null, null, false, undefined],
];

for (const [name, ua, browser, os, device, bot, parserType] of USER_AGENTS) {
  test(`user agent: ${name}`, () => {
    const d = derive('https://x.com/', null, ua);
    assert.deepEqual(
      { browser: d.browser, os: d.os, device: d.device, bot: d.bot },
      { browser, os, device, bot },
    );
    assert.equal(new UAParser(ua).getDevice().type, parserType);
  });
}

test('no user agent: no browser, os or device, not a bot', () => {
  const d = derive('https://x.com/', null, null);
  assert.deepEqual([d.browser, d.os, d.device, d.bot], [null, null, null, false]);
});

test('the user-agent cache never changes an answer, also past its bound', () => {
  const chrome = USER_AGENTS[0][1];
  const first = parseUserAgent(chrome);
  // 1,500 distinct UAs push the first out of a 1,000-entry cache; it parses the same again.
  for (let i = 0; i < 1500; i++) {
    const ua = `Mozilla/5.0 (Linux; Android 14; Pixel ${i}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36`;
    assert.equal(parseUserAgent(ua).device, 'mobile');
  }
  assert.deepEqual(parseUserAgent(chrome), first);
  assert.deepEqual(parseUserAgent(chrome), {
    browser: 'Chrome',
    os: 'Windows',
    device: 'desktop',
    bot: false,
  });
});

// The writer derives through the memo (write-events.ts): it must answer as deriveDimensions does,
// for repeated inputs, any mix of nulls, and after it has filled and started again.
test('property: the memo answers as deriveDimensions, also past its bound', () => {
  const part = (values: string[]) =>
    fc.option(fc.oneof(fc.constantFrom(...values), fc.string()), { nil: null });
  const event = fc.record({
    pageUrl: part(['https://Example.com/a?utm_source=x', '/pricing?gclid=1', 'https://example.com/']),
    referrer: part(['https://www.google.com/', 'https://example.com/b', 'android-app://x']),
    userAgent: part([USER_AGENTS[0][1], 'Googlebot/2.1 (+http://www.google.com/bot.html)']),
  });
  fc.assert(
    fc.property(fc.array(event, { maxLength: 40 }), (events) => {
      for (const e of events) assert.deepEqual(deriveDimensionsMemo(e), deriveDimensions(e));
    }),
  );
  // 5,000 distinct pages fill the memo (4,096 entries) and start it again.
  for (let i = 0; i < 5000; i++) {
    const e = { pageUrl: `https://example.com/p/${i}?utm_medium=m${i % 7}`, referrer: null, userAgent: null };
    assert.deepEqual(deriveDimensionsMemo(e), deriveDimensions(e));
    assert.ok(derivedMemoSize() <= 4096, 'bounded');
  }
  const e = { pageUrl: 'https://example.com/p/1?utm_medium=m1', referrer: null, userAgent: null };
  assert.equal(deriveDimensionsMemo(e), deriveDimensionsMemo(e), 'a repeat is the same object');
  assert.ok(Object.isFrozen(deriveDimensionsMemo(e)), 'shared, so frozen');
});

const DEVICES = new Set(['desktop', 'mobile', 'tablet', null]);
const CHANNEL_SET = new Set<string | null>(CHANNELS);

function assertShape(d: DerivedDimensions): void {
  assert.ok(DEVICES.has(d.device), `device ${d.device}`);
  assert.equal(typeof d.bot, 'boolean');
  if (d.hostname !== null) assert.equal(d.hostname, d.hostname.toLowerCase());
  if (d.referrerHost !== null) assert.equal(d.referrerHost, d.referrerHost.toLowerCase());
  for (const tag of [d.utmSource, d.utmMedium, d.utmCampaign, d.utmTerm, d.utmContent]) {
    if (tag === null) continue;
    assert.ok(tag.length > 0 && tag.length <= 256 && tag === tag.trim());
    assert.ok(!tag.includes('\u0000') && tag.isWellFormed(), 'storable in PostgreSQL text');
  }
}

test('property: arbitrary strings never throw, and every field keeps its shape', () => {
  const raw = fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), fc.string());
  // Arbitrary text, and arbitrary text behind the prefixes that send it down each parsing branch.
  const text = fc.oneof(
    raw,
    raw.map((s) => `https://${s}`),
    raw.map((s) => `/?utm_source=${s}`),
  );
  const maybe = (a: fc.Arbitrary<string>) => fc.option(a, { nil: null });
  fc.assert(
    fc.property(maybe(text), maybe(text), maybe(text), (pageUrl, referrer, userAgent) => {
      assertShape(deriveDimensions({ pageUrl, referrer, userAgent }));
    }),
    { numRuns: 2000 },
  );
});

test('property: URL-shaped input with tags keeps the path free of query and fragment', () => {
  const tag = fc.string({ unit: 'binary', maxLength: 300 });
  const url = fc
    .tuple(fc.webUrl({ withQueryParameters: true, withFragments: true }), tag, tag)
    .map(([u, s, m]) => {
      const hash = u.indexOf('#');
      const base = hash === -1 ? u : u.slice(0, hash);
      const sep = base.includes('?') ? '&' : '?';
      return `${base}${sep}utm_source=${encodeURIComponent(s)}&utm_medium=${encodeURIComponent(m)}`;
    });
  fc.assert(
    fc.property(url, fc.option(fc.webUrl(), { nil: null }), (pageUrl, referrer) => {
      const d = deriveDimensions({ pageUrl, referrer, userAgent: null });
      assertShape(d);
      assert.ok(d.hostname !== null && d.path !== null);
      assert.ok(!d.path.includes('?') && !d.path.includes('#'), d.path);
      assert.ok(CHANNEL_SET.has(d.channel) && d.channel !== null);
    }),
    { numRuns: 1000 },
  );
});
