import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const MAX_LABEL_VALUES = 200;

/** All of Tally's metrics, registered on the registry passed in (never the global one). */
export function createMetrics(registry: Registry = new Registry(), options: { defaults?: boolean } = {}) {
  if (options.defaults !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    // An earlier system's names, which the dashboards and alerts of its deployments scrape
    // (README.md, "Compatibility with the earlier systems").
    eventsProcessed: new Counter({
      name: 'analytics_events_processed_total',
      help: 'Events processed (stored for the first time), by type and emitting service',
      labelNames: ['event_type', 'service'] as const,
      registers,
    }),
    processingDuration: new Histogram({
      name: 'analytics_events_processing_duration_seconds',
      help: 'Time to process one batch: validation, transaction and commit',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    processingErrors: new Counter({
      name: 'analytics_events_processing_errors_total',
      help: 'Batch processing errors, by kind',
      labelNames: ['kind'] as const,
      registers,
    }),
    eventsStored: new Counter({
      name: 'analytics_events_stored_total',
      help: 'Events stored in PostgreSQL by this process',
      registers,
    }),
    botEvents: new Counter({
      name: 'tally_bot_events_total',
      help: 'Events stored for the first time that are bots (stored raw, left out of the rollups)',
      registers,
    }),
    droppedDeletedUserEvents: new Counter({
      name: 'tally_events_dropped_deleted_user_total',
      help: 'Events dropped because their user was deleted (a tombstone): late events, replays and retries of a deleted user',
      registers,
    }),
    // Ingest.
    ingestRequests: new Counter({
      name: 'tally_ingest_requests_total',
      help: 'Ingest HTTP requests, by route and status code',
      labelNames: ['route', 'status'] as const,
      registers,
    }),
    ingestEvents: new Counter({
      name: 'tally_ingest_events_total',
      help: 'Events received over HTTP, by outcome (accepted, duplicate, dropped: of a deleted user, rejected)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    ingestLatency: new Histogram({
      name: 'tally_ingest_request_duration_seconds',
      help: 'Ingest request latency, from request to acknowledgement',
      labelNames: ['route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    batchSize: new Histogram({
      name: 'tally_batch_size',
      help: 'Events per committed batch',
      buckets: [1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 25000],
      registers,
    }),
    e2eLatency: new Histogram({
      name: 'tally_e2e_latency_seconds',
      help: 'Time from an event being received by Tally to its batch being committed',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    deadLetters: new Counter({
      name: 'tally_dead_letters_total',
      help: 'Messages sent to the dead-letter table/topic, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    dbRetries: new Counter({
      name: 'tally_db_retries_total',
      help: 'Retriable PostgreSQL failures that were retried',
      registers,
    }),
    consumerLag: new Gauge({
      name: 'tally_consumer_lag',
      help: 'Messages between the committed position and the high watermark, per partition',
      labelNames: ['topic', 'partition'] as const,
      registers,
    }),
    consumerLagSum: new Gauge({
      name: 'tally_consumer_lag_sum',
      help: 'Messages between the committed positions and the high watermarks, summed over the partitions this process owns',
      registers,
    }),
    processorStalled: new Gauge({
      name: 'tally_processor_stalled',
      help: 'Processors with lag that made no progress for the stall timeout (1 while stalled)',
      registers,
    }),
    processorSecondsSinceProgress: new Gauge({
      name: 'tally_processor_seconds_since_progress',
      help: 'Seconds since the processor last committed a batch or had nothing to do',
      // Summed over workers this would mean nothing: report the worst.
      aggregator: 'max',
      registers,
    }),
    cacheHits: new Counter({ name: 'tally_cache_hits_total', help: 'Query cache hits', registers }),
    cacheMisses: new Counter({ name: 'tally_cache_misses_total', help: 'Query cache misses', registers }),
    readModelAnswers: new Counter({
      name: 'tally_read_model_answers_total',
      help: 'Questions over the raw rows, by who answered: the columnar read model, or PostgreSQL (model off, loading, or unable to catch up)',
      labelNames: ['source'] as const,
      registers,
    }),
    replicaFallbacks: new Counter({
      name: 'tally_read_replica_fallbacks_total',
      help: 'Cache misses the primary answered instead of the read replica, by why: lag (over TALLY_READ_MAX_LAG_MS), unreachable, error',
      labelNames: ['reason'] as const,
      registers,
    }),
    replicaLagMs: new Gauge({
      name: 'tally_read_replica_lag_ms',
      help: 'Replay lag of the read replica at the last snapshot an answer opened there, in ms (0: it held the version asked for; -1: unknown, nothing replayed yet)',
      registers,
    }),
    readModelEvents: new Gauge({
      name: 'tally_read_model_events',
      help: 'Events held by the columnar read model of this process (every project, hidden ones included)',
      registers,
    }),
    lastCommit: new Gauge({
      name: 'tally_last_commit_timestamp_seconds',
      help: 'Unix time of the last committed batch',
      // Summed over `tally process` workers a timestamp means nothing: report the latest.
      aggregator: 'max',
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Caps the number of distinct values a user-controlled label may take, so that a client
 * sending random event types cannot blow up the metrics' memory.
 */
export class LabelLimiter {
  readonly #seen = new Set<string>();
  readonly #max: number;

  constructor(max = MAX_LABEL_VALUES) {
    this.#max = max;
  }

  value(v: string | null | undefined): string {
    const s = v ?? '';
    if (this.#seen.has(s)) return s;
    if (this.#seen.size >= this.#max) return 'other';
    this.#seen.add(s);
    return s;
  }
}
