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
