import type { TallyEvent, ValidationIssue } from '../event/types.ts';
import { normalizeEvent } from '../event/normalize.ts';
import type { FieldError } from '../errors/tally-error.ts';
import type { BodyItem } from './decode-body.ts';
import type { Metrics } from '../observability/metrics.ts';

/**
 * What became of one accepted event: stored now, already known (its event_id was stored before),
 * or dropped because its user was deleted (a tombstone: not stored, not counted).
 */
export type EventOutcome = 'stored' | 'duplicate' | 'dropped';

/** Where accepted events go: the embedded micro-batcher, or a Kafka producer. */
export interface EventSink {
  /**
   * Resolves once the events are durable. With an outcome per event when the sink knows;
   * undefined when dedup and tombstones are applied later (Kafka).
   */
  submit(events: TallyEvent[]): Promise<EventOutcome[] | undefined>;
}

export interface IngestOutcome {
  accepted: number;
  /** Of the accepted events, those already stored; undefined when the sink cannot tell (Kafka). */
  duplicates: number | undefined;
  /** Of the accepted events, those of deleted users (dropped); undefined as `duplicates`. */
  dropped: number | undefined;
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
    if (events.length === 0) return { accepted: 0, duplicates: 0, dropped: 0, eventIds: [], rejected };

    const outcomes = await this.#deps.sink.submit(events);
    const duplicates = outcomes === undefined ? undefined : countOf(outcomes, 'duplicate');
    const dropped = outcomes === undefined ? undefined : countOf(outcomes, 'dropped');
    metrics.ingestEvents.inc({ outcome: 'accepted' }, events.length - (duplicates ?? 0) - (dropped ?? 0));
    if (duplicates) metrics.ingestEvents.inc({ outcome: 'duplicate' }, duplicates);
    if (dropped) metrics.ingestEvents.inc({ outcome: 'dropped' }, dropped);
    return { accepted: events.length, duplicates, dropped, eventIds: events.map((e) => e.eventId), rejected };
  }
}

function countOf(outcomes: readonly EventOutcome[], outcome: EventOutcome): number {
  let n = 0;
  for (const o of outcomes) if (o === outcome) n++;
  return n;
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
