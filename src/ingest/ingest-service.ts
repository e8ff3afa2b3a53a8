import type { TallyEvent, ValidationIssue } from '../event/types.ts';
import { normalizeEvent } from '../event/normalize.ts';
import type { FieldError } from '../errors/tally-error.ts';
import type { BodyItem } from './decode-body.ts';
import type { Metrics } from '../observability/metrics.ts';

/** Where accepted events go: the embedded micro-batcher, or a Kafka producer. */
export interface EventSink {
  /**
   * Resolves once the events are durable. With a flag per event (true = stored now, false =
   * already known) when the sink knows; undefined when dedup happens later (Kafka).
   */
  submit(events: TallyEvent[]): Promise<boolean[] | undefined>;
}

export interface IngestOutcome {
  accepted: number;
  duplicates: number | undefined;
  eventIds: string[];
  rejected: FieldError[];
}

/** What the request itself tells about its events' sender, for the fields the events leave out. */
export interface RequestOrigin {
  /** The request's User-Agent (browser routes only, ≤ 1024 characters); null: none to add. */
  userAgent: string | null;
  /** The country of the client address, or null; called at most once, when an event has none. */
  country: () => string | null;
}

export interface IngestServiceDeps {
  sink: EventSink;
  metrics: Metrics;
  maxFutureSkewMs: number;
}

/**
 * Validates every item of a request, hands the valid ones to the sink and waits until they
 * are durable. Invalid items are reported, never stored; they do not block the valid ones.
 */
export class IngestService {
  readonly #deps: IngestServiceDeps;

  constructor(deps: IngestServiceDeps) {
    this.#deps = deps;
  }

  /**
   * `origin` fills in, for each valid event without them, `user_agent` and `country`: an event's
   * own values always win.
   */
  async ingest(project: string, items: readonly BodyItem[], origin?: RequestOrigin): Promise<IngestOutcome> {
    const receivedAt = Date.now();
    const ctx = { project, receivedAt, maxFutureSkewMs: this.#deps.maxFutureSkewMs };
    const events: TallyEvent[] = [];
    const rejected: FieldError[] = [];
    // The request's country, looked up once, when the first event without one needs it.
    const country = { looked: false, value: null as string | null };
    items.forEach((item, index) => {
      if (!item.ok) {
        rejected.push({ index, field: '(line)', code: item.code, message: item.message });
        return;
      }
      const result = normalizeEvent(item.value, ctx);
      if (result.ok) {
        if (origin !== undefined) completeFromOrigin(result.event, origin, country);
        events.push(result.event);
      } else rejected.push(...result.issues.map((issue: ValidationIssue) => ({ index, ...issue })));
    });
    const { metrics } = this.#deps;
    const rejectedItems = new Set(rejected.map((r) => r.index)).size;
    if (rejectedItems > 0) metrics.ingestEvents.inc({ outcome: 'rejected' }, rejectedItems);
    if (events.length === 0) return { accepted: 0, duplicates: 0, eventIds: [], rejected };

    const fresh = await this.#deps.sink.submit(events);
    const duplicates = fresh === undefined ? undefined : fresh.filter((f) => !f).length;
    metrics.ingestEvents.inc({ outcome: 'accepted' }, events.length - (duplicates ?? 0));
    if (duplicates) metrics.ingestEvents.inc({ outcome: 'duplicate' }, duplicates);
    return { accepted: events.length, duplicates, eventIds: events.map((e) => e.eventId), rejected };
  }
}

function completeFromOrigin(
  event: TallyEvent,
  origin: RequestOrigin,
  country: { looked: boolean; value: string | null },
): void {
  if (event.userAgent === null) event.userAgent = origin.userAgent;
  if (event.country === null) {
    if (!country.looked) {
      country.value = origin.country();
      country.looked = true;
    }
    event.country = country.value;
  }
}
