import { v7 as uuidv7 } from 'uuid';
import { METADATA, PROPERTIES_NAMES, TIMESTAMP_NAMES, TYPE_NAMES } from '../compat/event-shapes.ts';
import { LIMITS } from './limits.ts';
import { parseTimestamp } from './timestamp.ts';
import type { NormalizeResult, ValidationIssue } from './types.ts';

export interface NormalizeContext {
  project: string;
  /** Server receive time, epoch ms. */
  receivedAt: number;
  /** Events whose corrected time is further than this into the future are rejected. */
  maxFutureSkewMs: number;
}

const MAX_PROPERTY_DEPTH = 32;

/**
 * Turns one incoming item, canonical or in an earlier system's shape (the field names of
 * src/compat/event-shapes.ts), into a validated canonical event.
 * Never throws: problems come back as a list of field issues.
 */
export function normalizeEvent(input: unknown, ctx: NormalizeContext): NormalizeResult {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return fail('(event)', 'TALLY_NOT_AN_OBJECT', 'each event must be a JSON object');
  }
  const src = input as Record<string, unknown>;
  const nested = src[METADATA.name];
  const metadata = isPlainObject(nested) ? nested : undefined;
  const issues: ValidationIssue[] = [];

  const eventId = optionalString(src, 'event_id', LIMITS.eventId, issues);
  const type = requiredString(src, firstPresent(src, TYPE_NAMES), LIMITS.type, issues);
  const userId = requiredString(src, 'user_id', LIMITS.userId, issues);
  const pageUrl =
    src.page_url !== undefined || metadata === undefined
      ? optionalString(src, 'page_url', LIMITS.url, issues)
      : optionalString(metadata, 'page_url', LIMITS.url, issues, METADATA.pageUrl);
  const referrer =
    src.referrer !== undefined || metadata === undefined
      ? optionalString(src, 'referrer', LIMITS.url, issues)
      : optionalString(metadata, 'referrer', LIMITS.url, issues, METADATA.referrer);
  const sessionId = optionalString(src, 'session_id', LIMITS.shortField, issues);
  const service = optionalString(src, 'service', LIMITS.shortField, issues);
  const userAgent = optionalString(src, 'user_agent', LIMITS.userAgent, issues);
  const country = readCountry(src, issues);
  const properties = readProperties(src, metadata, issues);
  const ts = readEventTime(src, ctx, issues);

  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    event: {
      project: ctx.project,
      eventId: eventId ?? uuidv7(),
      type: type!,
      userId: userId!,
      ts: ts!,
      receivedAt: ctx.receivedAt,
      pageUrl,
      referrer,
      sessionId,
      service,
      properties,
      userAgent,
      country,
    },
  };
}

function readEventTime(
  src: Record<string, unknown>,
  ctx: NormalizeContext,
  issues: ValidationIssue[],
): number | undefined {
  const field = firstPresent(src, TIMESTAMP_NAMES);
  const raw = src[field];
  let ts = ctx.receivedAt;
  if (raw !== undefined && raw !== null) {
    const parsed = parseTimestamp(raw);
    if (parsed === undefined) {
      issues.push({
        field,
        code: 'TALLY_INVALID_TIMESTAMP',
        message: `${field} must be an ISO-8601 date-time or epoch milliseconds`,
      });
      return undefined;
    }
    ts = parsed;
  }
  if (src.sent_at !== undefined && src.sent_at !== null) {
    const sentAt = parseTimestamp(src.sent_at);
    if (sentAt === undefined) {
      issues.push({
        field: 'sent_at',
        code: 'TALLY_INVALID_TIMESTAMP',
        message: 'sent_at must be an ISO-8601 date-time or epoch milliseconds',
      });
      return undefined;
    }
    // The client's clock is off by (sent_at - received_at); move the event time by the same amount.
    if (raw !== undefined && raw !== null) ts += ctx.receivedAt - sentAt;
  }
  if (ts > ctx.receivedAt + ctx.maxFutureSkewMs) {
    issues.push({
      field,
      code: 'TALLY_TIMESTAMP_IN_FUTURE',
      message: `${field} is more than ${ctx.maxFutureSkewMs / 1000} s in the future`,
    });
    return undefined;
  }
  if (ts < 0) {
    issues.push({
      field,
      code: 'TALLY_INVALID_TIMESTAMP',
      message: `${field} is before 1970 after clock-skew correction`,
    });
    return undefined;
  }
  return ts;
}

const COUNTRY_CODE = /^[A-Za-z]{2}$/;

/** `country`: an ISO 3166-1 alpha-2 code, stored upper case; absent or empty means unknown. */
function readCountry(src: Record<string, unknown>, issues: ValidationIssue[]): string | null {
  const value = src.country;
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') {
    issues.push({ field: 'country', code: 'TALLY_INVALID_TYPE', message: 'country must be a string' });
    return null;
  }
  if (!COUNTRY_CODE.test(value)) {
    issues.push({
      field: 'country',
      code: 'TALLY_INVALID_VALUE',
      message: 'country must be an ISO 3166-1 alpha-2 code: two letters, such as "DE" or "us"',
    });
    return null;
  }
  return value.toUpperCase();
}

function readProperties(
  src: Record<string, unknown>,
  metadata: Record<string, unknown> | undefined,
  issues: ValidationIssue[],
): string | null {
  let field = firstDefined(src, PROPERTIES_NAMES);
  let value: unknown = src[field];
  if (value === undefined && metadata !== undefined) {
    const rest = Object.fromEntries(Object.entries(metadata).filter(([k]) => !METADATA.isLifted(k)));
    if (Object.keys(rest).length === 0) return null;
    field = METADATA.name;
    value = rest;
  }
  if (value === undefined || value === null) return null;
  if (!isPlainObject(value)) {
    issues.push({ field, code: 'TALLY_INVALID_TYPE', message: `${field} must be a JSON object` });
    return null;
  }
  const problem = unstorableJson(value, 0);
  if (problem !== undefined) {
    issues.push({ field, code: 'TALLY_INVALID_VALUE', message: `${field} ${problem}` });
    return null;
  }
  const json = JSON.stringify(value);
  if (Buffer.byteLength(json) > LIMITS.propertiesBytes) {
    issues.push({
      field,
      code: 'TALLY_FIELD_TOO_LONG',
      message: `${field} must be at most ${LIMITS.propertiesBytes} bytes serialized`,
    });
    return null;
  }
  return json;
}

// TRICKY: PostgreSQL text and jsonb cannot hold NUL, and jsonb rejects lone UTF-16 surrogates;
// one such value would fail the whole batch transaction, so it is refused here, per event.
function unstorableJson(value: unknown, depth: number): string | undefined {
  if (depth > MAX_PROPERTY_DEPTH) return `is nested deeper than ${MAX_PROPERTY_DEPTH} levels`;
  if (typeof value === 'string') return unstorableText(value);
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, child] of Object.entries(value)) {
    const problem = unstorableText(key) ?? unstorableJson(child, depth + 1);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function unstorableText(s: string): string | undefined {
  if (s.includes('\u0000')) return 'contains a NUL character';
  if (!s.isWellFormed()) return 'contains an unpaired UTF-16 surrogate';
  return undefined;
}

function requiredString(
  src: Record<string, unknown>,
  field: string,
  max: number,
  issues: ValidationIssue[],
): string | undefined {
  const value = optionalString(src, field, max, issues);
  if (value === null && !issues.some((i) => i.field === field)) {
    issues.push({ field, code: 'TALLY_FIELD_REQUIRED', message: `${field} is required` });
  }
  return value ?? undefined;
}

function optionalString(
  src: Record<string, unknown>,
  key: string,
  max: number,
  issues: ValidationIssue[],
  field = key,
): string | null {
  const value = src[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') {
    issues.push({ field, code: 'TALLY_INVALID_TYPE', message: `${field} must be a string` });
    return null;
  }
  if (value.length === 0) return null;
  if (value.length > max) {
    issues.push({
      field,
      code: 'TALLY_FIELD_TOO_LONG',
      message: `${field} must be at most ${max} characters`,
    });
    return null;
  }
  const problem = unstorableText(value);
  if (problem !== undefined) {
    issues.push({ field, code: 'TALLY_INVALID_VALUE', message: `${field} ${problem}` });
    return null;
  }
  return value;
}

/** The first of `names` whose value is neither undefined nor null; else the first name. */
function firstPresent(src: Record<string, unknown>, names: readonly string[]): string {
  for (let i = 0; i < names.length; i++) {
    const value = src[names[i]];
    if (value !== undefined && value !== null) return names[i];
  }
  return names[0];
}

/** The first of `names` whose value is not undefined (null counts as given); else the first name. */
function firstDefined(src: Record<string, unknown>, names: readonly string[]): string {
  for (let i = 0; i < names.length; i++) {
    if (src[names[i]] !== undefined) return names[i];
  }
  return names[0];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function fail(field: string, code: string, message: string): NormalizeResult {
  return { ok: false, issues: [{ field, code, message }] };
}
