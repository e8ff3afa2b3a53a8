import { isUtf8 } from 'node:buffer';
import sjson from 'secure-json-parse';
import { DEFAULT_PROJECT } from '../auth/authorize.ts';
import { normalizeEvent } from '../event/normalize.ts';
import { parseCanonicalIso } from '../event/timestamp.ts';
import type { TallyEvent, ValidationIssue } from '../event/types.ts';

/**
 * The Kafka message contract. Ingest writes each accepted event as canonical JSON (the fields of
 * src/event/types.ts), already skew-corrected, with its receive time; the processor reads that
 * back and also the earlier systems' shapes (src/compat/event-shapes.ts), which their producers
 * write straight into a topic.
 */
export const PROJECT_HEADER = 'tally-project';

export interface EncodedEvent {
  /** Partitioning key: project + user, so one user's events stay in order on one partition. */
  key: string;
  value: string;
  headers: Map<string, string>;
}

export function encodeEvent(event: TallyEvent): EncodedEvent {
  // Built by hand rather than JSON.stringify of an object: ingest encodes every event, and
  // this is about twice as fast. JSON.stringify of each string does the escaping.
  let value = `{"event_id":${JSON.stringify(event.eventId)},"type":${JSON.stringify(event.type)},"user_id":${JSON.stringify(event.userId)},"timestamp":"${new Date(event.ts).toISOString()}","received_at":"${receivedAtIso(event.receivedAt)}"`;
  if (event.pageUrl !== null) value += `,"page_url":${JSON.stringify(event.pageUrl)}`;
  if (event.referrer !== null) value += `,"referrer":${JSON.stringify(event.referrer)}`;
  if (event.sessionId !== null) value += `,"session_id":${JSON.stringify(event.sessionId)}`;
  if (event.service !== null) value += `,"service":${JSON.stringify(event.service)}`;
  if (event.userAgent !== null) value += `,"user_agent":${JSON.stringify(event.userAgent)}`;
  // Resolved at ingest from the client address, which never reaches Kafka.
  if (event.country !== null) value += `,"country":${JSON.stringify(event.country)}`;
  // properties is already serialized JSON: spliced in rather than parsed and stringified again.
  if (event.properties !== null) value += `,"properties":${event.properties}`;
  return {
    key: `${event.project}\u001f${event.userId}`,
    value: `${value}}`,
    headers: projectHeaders(event.project),
  };
}

// The events of one request share their receive time: its text is made once.
let lastReceivedAt = NaN;
let lastReceivedAtIso = '';
function receivedAtIso(ms: number): string {
  if (ms !== lastReceivedAt) {
    lastReceivedAt = ms;
    lastReceivedAtIso = new Date(ms).toISOString();
  }
  return lastReceivedAtIso;
}

const headersByProject = new Map<string, Map<string, string>>();
/** Shared, never changed: the producer only reads headers. */
function projectHeaders(project: string): Map<string, string> {
  let headers = headersByProject.get(project);
  if (headers === undefined) {
    headers = new Map([[PROJECT_HEADER, project]]);
    // Projects are few; a flood of distinct ones must not grow this without bound.
    if (headersByProject.size >= 1000) headersByProject.clear();
    headersByProject.set(project, headers);
  }
  return headers;
}

export type DeadLetterReason = 'empty' | 'too_large' | 'invalid_utf8' | 'invalid_json' | 'invalid_event';

export type DecodeResult =
  { ok: true; event: TallyEvent } | { ok: false; reason: DeadLetterReason; detail: string };

export interface DecodeContext {
  /** Value of the project header, when the message has one. */
  project: string | undefined;
  /** The Kafka record timestamp (epoch ms): the receive time of messages that carry none. */
  messageTimestamp: number;
  maxFutureSkewMs: number;
  maxBytes: number;
}

/** Turns one consumed message into an event, or says why it belongs in the dead-letter topic. */
export function decodeEventMessage(value: Buffer | undefined | null, ctx: DecodeContext): DecodeResult {
  if (value === undefined || value === null || value.length === 0) {
    return { ok: false, reason: 'empty', detail: 'message has no value' };
  }
  if (value.length > ctx.maxBytes) {
    return {
      ok: false,
      reason: 'too_large',
      detail: `value is ${value.length} bytes, more than the ${ctx.maxBytes} allowed`,
    };
  }
  if (!isUtf8(value)) return { ok: false, reason: 'invalid_utf8', detail: 'value is not valid UTF-8' };
  let parsed: unknown;
  try {
    parsed = sjson.parse(value.toString('utf8'), undefined, {
      protoAction: 'error',
      constructorAction: 'error',
    });
  } catch (err) {
    return { ok: false, reason: 'invalid_json', detail: (err as Error).message };
  }
  const receivedAt = receivedAtOf(parsed) ?? ctx.messageTimestamp;
  const result = normalizeEvent(parsed, {
    project: ctx.project ?? DEFAULT_PROJECT,
    receivedAt,
    maxFutureSkewMs: ctx.maxFutureSkewMs,
  });
  if (result.ok) return result;
  return { ok: false, reason: 'invalid_event', detail: describe(result.issues) };
}

function receivedAtOf(parsed: unknown): number | undefined {
  if (parsed === null || typeof parsed !== 'object') return undefined;
  const raw = (parsed as { received_at?: unknown }).received_at;
  if (typeof raw !== 'string') return undefined;
  // Ingest writes it as toISOString does: read without Date.parse's general parser.
  const ms = parseCanonicalIso(raw) ?? Date.parse(raw);
  return Number.isFinite(ms) ? ms : undefined;
}

function describe(issues: readonly ValidationIssue[]): string {
  return issues.map((i) => `${i.field}: ${i.message} (${i.code})`).join('; ');
}
