import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';

export interface StallDetectorDeps {
  metrics: Pick<Metrics, 'processorStalled' | 'processorSecondsSinceProgress'>;
  logger: Logger;
  now?: () => number;
}

/** What the lag monitor saw on one tick, for the partitions this member answers for. */
export interface ProgressSample {
  /**
   * `owned`: the partitions assigned to this member; `group`: every partition of the subscribed
   * topics (this member owns none, so it watches whether anyone makes progress).
   */
  scope: 'owned' | 'group';
  /** Identifies the partition set, so that positions are compared only within the same set. */
  partitions: string;
  /** Messages between the stored positions and the high watermarks. */
  lag: number;
  /** Sum of the stored next offsets: it grows whenever a batch commits. */
  positions: number;
}

/**
 * Decides whether the processor is making progress (issue #19: a silent stall must say so). It is
 * stalled when there is lag and no stored position has advanced for `stallAfterMs`: with an
 * assignment, its own commits; without one, anybody's in the group.
 */
export class StallDetector {
  readonly #deps: StallDetectorDeps;
  readonly #stallAfterMs: number;
  readonly #now: () => number;
  #lastProgressAt: number;
  #last: ProgressSample | undefined;
  #reason: string | undefined;

  constructor(deps: StallDetectorDeps, stallAfterMs: number) {
    this.#deps = deps;
    this.#stallAfterMs = stallAfterMs;
    this.#now = deps.now ?? Date.now;
    this.#lastProgressAt = this.#now();
  }

  /** Why the processor is stalled, or undefined while it makes progress. */
  get stalledReason(): string | undefined {
    return this.#reason;
  }

  /** A batch committed. */
  progressed(): void {
    this.#lastProgressAt = this.#now();
  }

  observe(sample: ProgressSample): void {
    const now = this.#now();
    const last = this.#last;
    this.#last = sample;
    const advanced =
      last !== undefined && last.partitions === sample.partitions && sample.positions > last.positions;
    if (sample.lag === 0 || advanced) this.#lastProgressAt = now;
    const idleMs = now - this.#lastProgressAt;
    this.#deps.metrics.processorSecondsSinceProgress.set(idleMs / 1000);
    const reason =
      idleMs < this.#stallAfterMs
        ? undefined
        : sample.scope === 'owned'
          ? `no batch committed for ${Math.round(idleMs / 1000)} s while its partitions have lag ${sample.lag}`
          : `no partitions assigned, and the group made no progress for ${Math.round(idleMs / 1000)} s with lag ${sample.lag}`;
    if (reason !== undefined && this.#reason === undefined) {
      this.#deps.logger.warn(
        { lag: sample.lag, idleMs, scope: sample.scope },
        `processor stalled: ${reason}`,
      );
    } else if (reason === undefined && this.#reason !== undefined) {
      this.#deps.logger.info({ lag: sample.lag }, 'processor making progress again');
    }
    this.#reason = reason;
    this.#deps.metrics.processorStalled.set(reason === undefined ? 0 : 1);
  }
}
