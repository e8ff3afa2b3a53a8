import { isbot } from 'isbot';
import { LRUCache } from 'lru-cache';
import { UAParser } from 'ua-parser-js';

export type Device = 'desktop' | 'mobile' | 'tablet';

/** What Tally keeps of a User-Agent: browser and OS names as ua-parser-js gives them, device class, bot flag. */
export interface UserAgentDimensions {
  readonly browser: string | null;
  readonly os: string | null;
  /** null only without a user agent. */
  readonly device: Device | null;
  readonly bot: boolean;
}

const NO_USER_AGENT: UserAgentDimensions = Object.freeze({
  browser: null,
  os: null,
  device: null,
  bot: false,
});

// ua-parser-js's device types folded into Tally's three (docs/channels.md, "Devices"). A watch is
// a small touch screen carried on the body: mobile. A TV, console, car or kiosk is a big or fixed
// screen used without touch: desktop. No type at all is what ua-parser gives desktop browsers.
const DEVICE_OF_TYPE: Readonly<Record<string, Device>> = {
  mobile: 'mobile',
  tablet: 'tablet',
  wearable: 'mobile',
  smarttv: 'desktop',
  console: 'desktop',
  embedded: 'desktop',
  xr: 'desktop',
};

// Parsing runs once per stored event on the write path and costs tens of microseconds (a few
// hundred regular expressions), while a site's traffic repeats a few hundred user agents: a
// bounded cache keyed by the whole string makes the common case a lookup. The result depends on
// the string alone, so the cache cannot change an answer; 1,000 entries of ≤ 1 KB keys is ≤ ~1 MB.
const cache = new LRUCache<string, UserAgentDimensions>({ max: 1000 });

/** The browser, OS, device class and bot flag of a User-Agent string; never throws. */
export function parseUserAgent(userAgent: string | null): UserAgentDimensions {
  if (userAgent === null || userAgent.trim() === '') return NO_USER_AGENT;
  let parsed = cache.get(userAgent);
  if (parsed === undefined) {
    parsed = parseUncached(userAgent);
    cache.set(userAgent, parsed);
  }
  return parsed;
}

function parseUncached(userAgent: string): UserAgentDimensions {
  let bot = false;
  try {
    bot = isbot(userAgent);
    const r = new UAParser(userAgent).getResult();
    return Object.freeze({
      browser: r.browser.name || null, // || : an empty name is no name
      os: r.os.name || null,
      device: (r.device.type === undefined ? undefined : DEVICE_OF_TYPE[r.device.type]) ?? 'desktop',
      bot,
    });
  } catch {
    // Third-party parsers over arbitrary text: an exception must not fail a batch of events. A
    // user agent was given, so the event still gets the device class a bare UA gets.
    return Object.freeze({ browser: null, os: null, device: 'desktop', bot });
  }
}
