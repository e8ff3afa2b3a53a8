/**
 * A lab script for the processor worker's own CPU per event (issue 24), without Kafka or
 * PostgreSQL: scenario 3's events, encoded as `tally ingest` encodes them, go through
 * BatchBuilder.add (decode: the header, JSON, validation) and then writeEvents (write-prep: the
 * dimensions, the (bucket, user) rows, the parameters) against a stand-in client that does to the
 * parameters what pg does before sending them: prepareValue, then each string written into a
 * Buffer. Prints µs of CPU per event for each part, per round (the first includes the JIT's
 * warm-up). Run it with `--trace-gc` to see the collections.
 *
 *   node --max-semi-space-size=32 bench/worker-lab.ts [events, default 200000] [raw|noraw]
 *
 * SIZE=n: events per batch (default 5,000, BATCH_SIZE's default).
 */
import { createRequire } from 'node:module';
import { BatchBuilder, type ConsumedMessage } from '../src/process/batch-builder.ts';
import { KnownUserRows } from '../src/store/known-user-rows.ts';
import { UserHashes } from '../src/store/user-hash.ts';
import { userKey } from '../src/store/user-numbers.ts';
import { writeEvents } from '../src/store/write-events.ts';
import { benchBatch } from './lib/events.ts';
import { toMessage } from './lib/kafka.ts';

// pg's own formatting of a parameter (not in its typings).
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as {
  prepareValue: (value: unknown) => unknown;
};
const events = Number(process.argv[2] ?? 200_000);
const withRaw = process.argv[3] !== 'noraw';
const size = Number(process.env.SIZE ?? 5000);

const messages: ConsumedMessage[] = benchBatch(events, Date.parse('2019-06-01T00:00:00Z'), 86_400_000).map(
  (body, i) => {
    const m = toMessage('bench', body);
    return {
      topic: 'bench',
      partition: i % 6,
      offset: BigInt(i),
      timestamp: BigInt(Date.now()),
      value: m.value,
      headers: m.headers as Map<Buffer, Buffer>,
    };
  },
);
const hashes = new UserHashes(Buffer.alloc(32, 7));
const known = new KnownUserRows();
const numbers = new Map<string, number>();
// What pg does to the values before they reach the socket.
const client = {
  query: async (q: { values: unknown[] }) => {
    for (const v of q.values.map((value) => prepareValue(value))) {
      if (typeof v === 'string') Buffer.allocUnsafe(Buffer.byteLength(v)).write(v);
    }
    const all = (flag: boolean) => new Array<boolean>(size).fill(flag);
    return { rows: [{ fresh: all(true), projects: [], versions: [], dropped: all(false) }] };
  },
};
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

for (let round = 0; round < 3; round++) {
  let decode = 0;
  let prep = 0;
  const builder = new BatchBuilder({ groupId: 'lab', maxFutureSkewMs: 300_000, maxMessageBytes: 1 << 20 });
  for (let i = 0; i < messages.length; i += size) {
    let t = cpuMs();
    for (const m of messages.slice(i, i + size)) builder.add(m);
    const batch = builder.take(() => null);
    decode += cpuMs() - t;
    t = cpuMs();
    const userHashes = new Map<string, Buffer>();
    const userNumbers = new Map<string, number>();
    for (const e of batch.events) {
      const k = userKey(e.project, e.userId);
      if (!numbers.has(k)) numbers.set(k, numbers.size);
      userNumbers.set(k, numbers.get(k)!);
      if (!userHashes.has(e.userId)) userHashes.set(e.userId, hashes.of(e.userId));
    }
    await writeEvents(
      client as never,
      batch.events,
      withRaw ? 0 : undefined,
      userNumbers,
      known,
      1_800_000,
      userHashes,
    );
    prep += cpuMs() - t;
  }
  const us = (ms: number) => ((ms * 1000) / events).toFixed(2);
  console.log(`round ${round}: decode ${us(decode)} µs/event, write-prep ${us(prep)} µs/event`);
}
