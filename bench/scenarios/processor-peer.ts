import pg from 'pg';
import { cpuText, type CpuSample, type Drainer } from '../lib/drain-window.ts';
import { toMessage } from '../lib/kafka.ts';
import type { Row } from '../lib/report.ts';
import {
  drainWithPeer,
  ensureStreamsPeerBuild,
  peerTotals,
  referenceTotals,
  totalsDiff,
} from '../lib/streams-peer.ts';
import { requireTool } from '../lib/tools.ts';
import type { KafkaPg } from './processor.ts';

/** The peer as CPU rows and log lines name it. */
export const PEER: Drainer = { name: 'Kafka Streams peer', which: 'the JVM (JIT and GC threads included)' };

export interface PeerInput {
  /** A pre-filled topic Tally's processor drained too; the peer reads it as its own group. */
  topic: string;
  /** The events in it, as produced (bodies before src/kafka/codec.ts), and their project. */
  events: readonly Record<string, unknown>[];
  project: string;
  partitions: number;
  threads: number;
}

/**
 * Scenario 3's peer (issue 24): the Kafka Streams application of bench/peers/streams/ drains
 * the same topic, its totals in PostgreSQL are checked against the events' own, and the row
 * sets Tally's rate with raw storage off against it; with it, the CPU per event of the peer's
 * drain. Undefined (a loud skip) without javac; an error when the peer's totals are wrong, as a
 * baseline that computes less is no baseline.
 */
export async function streamsPeerRow(
  env: KafkaPg,
  input: PeerInput,
  tallyRawOffRate: number,
  log: (line: string) => void,
): Promise<{ row: Row; cpuUs: CpuSample } | undefined> {
  if (!requireTool('javac', 'builds the Kafka Streams peer of scenario 3', log, ['-version']))
    return undefined;
  log('building the Kafka Streams peer (cached by a hash of its sources)');
  const classpath = await ensureStreamsPeerBuild();
  const schema = `streams_peer_${Date.now()}`;
  log(`Kafka Streams peer (exactly_once_v2, ${input.threads} stream threads) on the raw-storage-off topic`);
  const peer = await drainWithPeer(
    {
      bootstrap: env.bootstrap,
      databaseUrl: env.databaseUrl,
      topic: input.topic,
      total: input.events.length,
      schema,
      threads: input.threads,
    },
    classpath,
  );
  log(
    `  ${Math.round(peer.rate)} events/s, ${cpuText(peer.cpuUs, PEER)} (first to last commit: ${peer.measured} events)`,
  );
  const db = new pg.Pool({ connectionString: env.databaseUrl, max: 1 });
  try {
    // Encoded again, one at a time: at 1,000,000 events the messages are not all kept in memory.
    const want = referenceTotals(
      (function* () {
        for (const e of input.events) yield toMessage(input.topic, e, input.project);
      })(),
    );
    const diff = totalsDiff(want, await peerTotals(db, schema));
    if (diff.length > 0) throw new Error(`the Kafka Streams peer's totals are wrong:\n${diff.join('\n')}`);
    await db.query(`DROP SCHEMA ${schema} CASCADE`);
  } finally {
    await db.end();
  }
  const row: Row = {
    scenario: '3. processor, Kafka Streams peer',
    metric:
      `events/s from the same pre-filled topic (${input.events.length} events, ${input.partitions} partitions) into PostgreSQL: ` +
      `Tally raw storage off (NUM_WORKERS=${input.threads}) vs a Kafka Streams app (${input.threads} threads, exactly_once_v2) ` +
      'computing per-minute counts by type, page views by page and distinct users, upserted every 500 ms; ' +
      'first to last PostgreSQL commit for both; the peer does no dedup, raw rows, hour/day levels or per-user rows (docs/benchmarks.md)',
    tally: Math.round(tallyRawOffRate),
    baseline: Math.round(peer.rate),
    baselineName: 'Kafka Streams peer',
    unit: 'events/s',
    target: '≥ 50 % of the peer (moonshot: 100 %)',
  };
  return { row, cpuUs: peer.cpuUs };
}
