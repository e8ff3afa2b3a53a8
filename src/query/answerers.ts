import type pg from 'pg';
import { AnalyticsStore } from '../store/analytics-store.ts';
import { EventsStore } from '../store/events-store.ts';
import { readRangeRows, readRangeRowsIn, type ModelRowSink } from '../store/model-rows.ts';
import { readSnapshot, type Queryable } from '../store/read-snapshot.ts';
import { StatsStore } from '../store/stats-store.ts';
import { BreakdownService } from './breakdown-service.ts';
import { ColumnarBuilder } from './columnar/builder.ts';
import type { OneAtATime } from '../util/one-at-a-time.ts';
import { ProductService } from './product/product-service.ts';
import type { ReadModel } from './read-model.ts';
import { ScopedStats, type RawWindow, type Snapshot } from './scoped-stats.ts';
import { StatsService } from './stats-service.ts';

/** The services that answer the questions, all reading one database (QueryService's deps). */
export interface Answerers {
  stats: ScopedStats;
  breakdown: BreakdownService;
  product: ProductService;
  events: EventsStore;
}

export interface AnswerersOptions {
  raw: RawWindow;
  model: ReadModel | undefined;
  maxScanEvents: number;
  /**
   * The product questions' raw-row reads (each up to `maxScanEvents` events in memory) of every
   * answerer built with these options, the primary's and the replica's, one after another.
   */
  rawReads: OneAtATime;
}

/**
 * The services over a pool: plain rollup questions one statement each, every answer of more
 * statements on a snapshot of its own (readSnapshot).
 */
export function poolAnswerers(pool: pg.Pool, options: AnswerersOptions): Answerers {
  return build(
    pool,
    (read) => readSnapshot(pool, (db) => read(readers(db))),
    (project, range, atMost, builder) => readRangeRows(pool, project, range, atMost, builder),
    options,
  );
}

/**
 * The services over one snapshot the caller holds open (a replica's: replica-reads.ts): every
 * statement of the answer, the product questions' raw rows included, sees the same data.
 */
export function snapshotAnswerers(db: Queryable, options: AnswerersOptions): Answerers {
  return build(
    db,
    (read) => read(readers(db)),
    (project, range, atMost, builder) => readRangeRowsIn(db, project, range, atMost, builder),
    options,
  );
}

function build(
  db: Queryable,
  snapshot: Snapshot,
  /** The raw rows of a range into `sink`, on one snapshot; false (nothing read) past `atMost`. */
  rows: (
    project: string,
    range: { fromMs: number; toMs: number },
    atMost: number,
    sink: ModelRowSink,
  ) => Promise<boolean>,
  options: AnswerersOptions,
): Answerers {
  const { raw, model, maxScanEvents, rawReads } = options;
  const stats = new ScopedStats(new StatsService(new StatsStore(db)), { raw, model, snapshot });
  const product = new ProductService({
    scoped: stats,
    raw,
    // Without the read model: the same columns, built for this one answer.
    readModel: (project, range, maxEvents) =>
      rawReads.run(async () => {
        const builder = new ColumnarBuilder();
        return (await rows(project, range, maxEvents, builder)) ? builder.build() : undefined;
      }),
    maxScanEvents,
  });
  return { stats, breakdown: new BreakdownService(stats), product, events: new EventsStore(db) };
}

function readers(db: Queryable) {
  return { stats: new StatsService(new StatsStore(db)), store: new AnalyticsStore(db) };
}
