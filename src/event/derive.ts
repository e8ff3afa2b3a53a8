import type { TallyEvent } from './types.ts';

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
  // First cut, replaced by the full rule table (issue 20, helper "derive").
  let hostname: string | null = null;
  let path: string | null = null;
  if (e.pageUrl !== null) {
    try {
      const u = new URL(e.pageUrl);
      hostname = u.hostname.toLowerCase();
      path = u.pathname;
    } catch {
      path = e.pageUrl.split(/[?#]/, 1)[0];
    }
  }
  return {
    hostname,
    path,
    referrerHost: null,
    utmSource: null,
    utmMedium: null,
    utmCampaign: null,
    utmTerm: null,
    utmContent: null,
    channel: null,
    browser: null,
    os: null,
    device: null,
    bot: false,
  };
}
