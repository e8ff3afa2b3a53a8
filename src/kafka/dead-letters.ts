import { PROJECT_HEADER } from './codec.ts';

/**
 * The dead-letter contract between `tally process` (writes) and `tally replay` (reads), see
 * docs/kafka.md "Dead letters": the value is the original payload byte for byte; these headers
 * say why it was refused and where it came from.
 */
export const DLQ_HEADERS = {
  reason: 'tally-dlq-reason',
  detail: 'tally-dlq-detail',
  topic: 'tally-source-topic',
  partition: 'tally-source-partition',
  offset: 'tally-source-offset',
  project: PROJECT_HEADER,
} as const;

export const DLQ_SUFFIX = '.dlq';

export function dlqTopic(topic: string): string {
  return `${topic}${DLQ_SUFFIX}`;
}
