import cliProgress from 'cli-progress';
import type { Config } from '../config/load.ts';
import { TallyError } from '../errors/tally-error.ts';
import { replayDeadLetters, type ReplaySummary } from '../process/dead-letter-replay.ts';

export interface ReplayCommandOptions {
  topic: string;
  since?: string;
  dryRun: boolean;
  group?: string;
}

/** Largest value replay accepts back into a topic (the processor's default TALLY_MAX_MESSAGE_BYTES). */
const MAX_MESSAGE_BYTES = 1024 * 1024;

/** `tally replay`: drains a dead-letter topic back into its source topic with a progress bar. */
export async function runReplay(config: Config, opts: ReplayCommandOptions): Promise<ReplaySummary> {
  if (config.kafka === undefined) {
    throw new TallyError('TALLY_CONFIG_INVALID', 'tally replay needs KAFKA_BROKERS (or KAFKA_BROKER)');
  }
  let since: number | undefined;
  if (opts.since !== undefined) {
    since = Date.parse(opts.since);
    if (!Number.isFinite(since))
      throw new TallyError('TALLY_INVALID_QUERY', `--since ${opts.since} is not an ISO-8601 time`);
  }
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: 'replaying [{bar}] {value}/{total} dead letters | {eta_formatted} left',
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let started = false;
  try {
    return await replayDeadLetters({
      brokers: config.kafka.brokers,
      dlqTopic: opts.topic,
      groupId: opts.group ?? `tally-replay.${opts.topic}`,
      since,
      dryRun: opts.dryRun,
      maxFutureSkewMs: config.raw.TALLY_MAX_FUTURE_SKEW_SEC * 1000,
      maxMessageBytes: MAX_MESSAGE_BYTES,
      onProgress: (read, total) => {
        if (!started) bar?.start(total, read);
        else bar?.update(read);
        started = true;
      },
    });
  } finally {
    bar?.stop();
  }
}

export function formatReplaySummary(s: ReplaySummary, opts: ReplayCommandOptions): string {
  const verb = opts.dryRun ? 'would move' : 'moved';
  const where = Object.entries(s.targets)
    .map(([topic, n]) => `${n} to ${topic}`)
    .join(', ');
  const skippedTotal = Object.values(s.skipped).reduce((a, b) => a + b, 0);
  const why = Object.entries(s.skipped)
    .map(([reason, n]) => `${reason}: ${n}`)
    .join(', ');
  return [
    `${opts.topic}: read ${s.read} dead letters; ${verb} ${s.moved}${where ? ` (${where})` : ''}; skipped ${skippedTotal}${why ? ` (${why})` : ''}`,
    ...(opts.dryRun ? ['dry run: nothing was produced or committed'] : []),
  ].join('\n');
}
