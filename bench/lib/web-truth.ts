import type { TallyEvent } from '../../src/event/types.ts';
import { SEARCH_HOSTS, SOCIAL_HOSTS, USER_AGENTS } from './web-tables.ts';

/**
 * What the web data set's generator meant each event's dimensions to be, read back from the
 * event through the generator's own tables. The bench's STAND-IN for src/event/derive.ts while
 * the writer does not store the dimension columns (before the issue-20 work is merged): it lets
 * the raw-SQL baseline run over realistic columns. It is not the contract's derivation and is
 * never used when the writer fills the columns itself.
 */
export interface GroundTruth {
  userAgent: string | null;
  country: string | null;
  hostname: string | null;
  path: string | null;
  referrerHost: string | null;
  utmSource: string | null;
  utmMedium: string | null;
  utmCampaign: string | null;
  utmTerm: string | null;
  channel: string | null;
  browser: string | null;
  os: string | null;
  device: string | null;
  bot: boolean;
}

const AGENTS = new Map(USER_AGENTS.map((a) => [a.ua, a]));

export function groundTruth(e: TallyEvent): GroundTruth {
  const page = e.pageUrl === null ? null : new URL(e.pageUrl);
  let referrerHost = e.referrer === null ? null : new URL(e.referrer).hostname;
  if (referrerHost === page?.hostname) referrerHost = null;
  const tag = (k: string) => page?.searchParams.get(k) ?? null;
  const utmSource = tag('utm_source');
  const utmMedium = tag('utm_medium');
  const agent = e.userAgent === null ? undefined : AGENTS.get(e.userAgent);
  return {
    userAgent: e.userAgent,
    country: e.country,
    hostname: page?.hostname ?? null,
    path: page?.pathname ?? null,
    referrerHost,
    utmSource,
    utmMedium,
    utmCampaign: tag('utm_campaign'),
    utmTerm: tag('utm_term'),
    channel: channelOf(utmSource, utmMedium, referrerHost),
    browser: agent?.browser ?? null,
    os: agent?.os ?? null,
    device: agent?.device ?? null,
    bot: agent?.bot ?? false,
  };
}

/** The generator's sources (web-tables.ts SOURCES) mapped back to their channel. */
function channelOf(source: string | null, medium: string | null, referrerHost: string | null): string {
  if (medium === 'email') return 'Email';
  if (medium === 'cpc') return source === 'google' ? 'Paid Search' : 'Paid Social';
  if (medium === 'social') return 'Organic Social';
  if (referrerHost === null) return 'Direct';
  if (SEARCH_HOSTS.has(referrerHost)) return 'Organic Search';
  if (SOCIAL_HOSTS.has(referrerHost)) return 'Organic Social';
  return 'Referral';
}
