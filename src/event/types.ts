/** The canonical event, after normalisation and validation (its fields: README.md, "Ingest"). */
export interface TallyEvent {
  project: string;
  eventId: string;
  type: string;
  userId: string;
  /** Event time in epoch milliseconds, skew-corrected. */
  ts: number;
  /** Server receive time in epoch milliseconds. */
  receivedAt: number;
  pageUrl: string | null;
  referrer: string | null;
  sessionId: string | null;
  /** The browser's User-Agent (≤ 1024), from the event or, for browser ingest, the request header. */
  userAgent: string | null;
  /** ISO 3166-1 alpha-2, upper case: the event's own `country`, or looked up from the client address at ingest. */
  country: string | null;
  service: string | null;
  /** Serialized JSON object, or null. */
  properties: string | null;
}

export interface ValidationIssue {
  field: string;
  code: string;
  message: string;
}

export type NormalizeResult = { ok: true; event: TallyEvent } | { ok: false; issues: ValidationIssue[] };
