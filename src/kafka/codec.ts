import { isUtf8 } from 'node:buffer';
import sjson from 'secure-json-parse';
import { normalizeEvent } from '../event/normalize.ts';
import type { TallyEvent, ValidationIssue } from '../event/types.ts';

/**
 * The Kafka message contract. Ingest writes each accepted event as canonical JSON (DESIGN.md,
 * "Event"), already skew-corrected, with its receive time; the processor reads that back and
 * also any seed shape that other producers write straight into a topic.
 */
export const PROJECT_HEADER = 'tally-project';
export const DEFAULT_PROJECT = 'default';

export interface EncodedEvent {
  /** Partitioning key: project + user, so one user's events stay in order on one partition. */
  key: string;
  value: string;
  headers: Map<string, string>;
}

export function encodeEvent(event: TallyEvent): EncodedEvent {
  const head = JSON.stringify({
    event_id: event.eventId,
    type: event.type,
    user_id: event.userId,
    timestamp: new Date(event.ts).toISOString(),
    received_at: new Date(event.receivedAt).toISOString(),
    page_url: event.pageUrl ?? undefined,
    referrer: event.referrer ?? undefined,
    session_id: event.sessionId ?? undefined,
    service: event.service ?? undefined,
  });
  // properties is already serialized JSON: splice it in rather than parse and stringify again.
  const value = event.properties === null ? head : `${head.slice(0, -1)},"properties":${event.properties}}`;
  return {
    key: `${event.project}\u001f${event.userId}`,
    value,
    headers: new Map([[PROJECT_HEADER, event.project]]),
  };
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
  const ms = Date.parse(raw);
  return Number.isFinite(ms) ? ms : undefined;
}

function describe(issues: readonly ValidationIssue[]): string {
  return issues.map((i) => `${i.field}: ${i.message} (${i.code})`).join('; ');
}
