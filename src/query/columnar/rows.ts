import type { EventDimension, VisitDimension } from '../filters.ts';

/**
 * The rows the columnar model is built from: a tally.events row's dimension columns and a
 * tally.sessions row (migration 010), snake_case as PostgreSQL returns them, times in epoch ms.
 */
export interface EventRow {
  user_id: string;
  ts: number;
  type: string;
  /** NULL or '' for an event cut into visits by the timeout. */
  session_id: string | null;
  path: string | null;
  hostname: string | null;
  browser: string | null;
  os: string | null;
  device: string | null;
  country: string | null;
  is_bot: boolean;
  /** The parsed JSON object (jsonb), or null. */
  properties: Readonly<Record<string, unknown>> | null;
}

export interface VisitRow {
  user_id: string;
  session_key: string;
  started_at: number;
  ended_at: number;
  events: number;
  page_views: number;
  entry_page: string | null;
  exit_page: string | null;
  is_bot: boolean;
  referrer_host: string | null;
  channel: string | null;
  utm_source: string | null;
  utm_medium: string | null;
  utm_campaign: string | null;
  utm_term: string | null;
  utm_content: string | null;
}

/** Each event dimension's column in EventRow (as in src/store/analytics-store.ts). */
export const EVENT_FIELDS = {
  page: 'path',
  hostname: 'hostname',
  event_type: 'type',
  browser: 'browser',
  os: 'os',
  device: 'device',
  country: 'country',
} as const satisfies Record<EventDimension, keyof EventRow>;

/** Each visit dimension's column in VisitRow. */
export const VISIT_FIELDS = {
  entry_page: 'entry_page',
  exit_page: 'exit_page',
  referrer: 'referrer_host',
  channel: 'channel',
  utm_source: 'utm_source',
  utm_medium: 'utm_medium',
  utm_campaign: 'utm_campaign',
  utm_term: 'utm_term',
  utm_content: 'utm_content',
} as const satisfies Record<VisitDimension, keyof VisitRow>;

/**
 * A property's value as PostgreSQL's `properties ->> key` gives it: a string as is, JSON null
 * or a missing key as NULL, anything else as its JSON text.
 * TRICKY: jsonb keeps a number's written form ("1.0"), JSON.stringify does not ("1"); rows
 * loaded from PostgreSQL should carry `->>`'s text for non-string values to be exact there.
 */
export function propertyText(properties: EventRow['properties'], key: string): string | null {
  if (properties === null || !Object.hasOwn(properties, key)) return null;
  const v = properties[key];
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? v : JSON.stringify(v);
}
