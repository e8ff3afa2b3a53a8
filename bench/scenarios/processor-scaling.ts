import { setTimeout as sleep } from 'node:timers/promises';
import { Admin } from '@platformatic/kafka';
import pg from 'pg';
import { ensureTopics } from '../../src/kafka/topics.ts';
import {
  cpuRows,
  cpuText,
  measureDrain,
  serverPids,
  type CpuSample,
  type DrainWindow,
  type ServerPids,
} from '../lib/drain-window.ts';
import { benchBatch } from '../lib/events.ts';
import { benchProducer, produceAll, toMessage } from '../lib/kafka.ts';
import type { Service } from '../lib/processes.ts';
import type { Row } from '../lib/report.ts';
import type { BenchContext } from '../run.ts';
import { committedEvents, sqlCeiling, startProcessor, type KafkaPg } from './processor.ts';

const DAY = 86_400_000;
const WINDOW = Date.parse('2019-07-01T00:00:00Z');
/** Enough for the largest group to give every member several partitions; the same for every run. */
export const SCALING_PARTITIONS = 12;
export const SCALING_INSTANCES = [1, 2, 4] as const;
const DRAIN_TIMEOUT_MS = 600_000;

/** The group's window runs from the first commit after the whole group joined to the last. */
interface GroupDrain extends DrainWindow {
  rssMb: number;
}

/** Starts `n` `tally process` instances at once, one worker each, in one consumer group. */
async function startInstances(env: KafkaPg, topic: string, groupId: string, n: number): Promise<Service[]> {
  const started = await Promise.allSettled(
    Array.from({ length: n }, () => startProcessor(env, { topic, groupId, workers: 1, storeRaw: true })),
  );
  const up = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed !== undefined) {
    await Promise.allSettled(up.map((s) => s.stop()));
    throw failed.reason;
  }
  return up;
}

/**
 * Drains `topic` (holding `total` events) with `n` instances in one group. The rate starts at the
 * first commit seen once the group is Stable with all `n` members, so that neither the start-up
 * nor what the first members drained alone while the others were starting counts; it ends at the
 * last commit. Commits are read from tally.positions, which every batch transaction advances.
 */
async function drainWithGroup(
  env: KafkaPg,
  db: pg.Pool,
  servers: ServerPids,
  topic: string,
  total: number,
  n: number,
): Promise<GroupDrain> {
  const groupId = `bench-${topic}`;
  const instances = await startInstances(env, topic, groupId, n);
  const admin = new Admin({ clientId: 'tally-bench', bootstrapBrokers: [env.bootstrap] });
  let done = false;
  let joined = false;
  // Its own loop, slower than the commit poll: describing the group costs the broker a request.
  // A failed request (the coordinator still loading the group) is asked again, never fatal.
  const watching = (async () => {
    while (!done && !joined) {
      const group = await admin.describeGroups({ groups: [groupId] }).then(
        (groups) => groups.get(groupId),
        () => undefined,
      );
      joined = group?.state.toUpperCase() === 'STABLE' && group.members.size === n;
      if (!joined) await sleep(100);
    }
  })();
  try {
    const window = await measureDrain({
      total,
      committed: () => committedEvents(db, groupId, topic),
      pids: instances.map((i) => i.child.pid!),
      servers,
      ready: () => joined,
      timeoutMs: DRAIN_TIMEOUT_MS,
      timedOut: (count) =>
        new Error(`${n} tally process instance(s) committed only ${count} of ${total} events in 10 min`),
    });
    const rssMb = Math.max(...(await Promise.all(instances.map((i) => i.peakRssMb()))));
    return { ...window, rssMb };
  } finally {
    done = true;
    await watching;
    await admin.close();
    await Promise.allSettled(instances.map((i) => i.stop()));
  }
}

const plural = (n: number) => `${n} instance${n === 1 ? '' : 's'}`;

/**
 * The scenario's rows from its measurements: a rate row per instance count (to the ceiling, and to
 * the 1-instance rate), then the CPU rows. bench/lib/capacity-model.ts reads them by these names.
 */
export function scalingRows(
  total: number,
  ceiling: number,
  drains: readonly { instances: number; rate: number; cpuUs: CpuSample }[],
): Row[] {
  const single = drains.find((d) => d.instances === 1)?.rate ?? Number.NaN;
  const what = `events/s from a pre-filled topic (${total} events, ${SCALING_PARTITIONS} partitions) into PostgreSQL, raw storage on`;
  const rows: Row[] = drains.map((d) => {
    const vsOne =
      d.instances === 1 || !Number.isFinite(d.rate / single)
        ? ''
        : `; ${(d.rate / single).toFixed(2)}× the 1-instance rate`;
    return {
      scenario: `3. processor scaling, ${plural(d.instances)}`,
      metric: `${what}, ${d.instances} × tally process with NUM_WORKERS=1 in one consumer group, from the first commit after all had joined to the last${vsOne}; baseline: scenario 3's INSERT … SELECT of the same rows, measured after these runs`,
      tally: Math.round(d.rate),
      baseline: Math.round(ceiling),
      baselineName: 'INSERT … SELECT from staging',
      unit: 'events/s',
    };
  });
  for (const d of drains)
    rows.push(...cpuRows('3. processor scaling, CPU', `with ${plural(d.instances)}`, d.cpuUs));
  return rows;
}

/**
 * Scenario 3, scaling: the same pre-filled-topic drain as scenario 3, raw storage on, by 1, 2 and
 * 4 `tally process` instances of one worker each in one consumer group (one topic of
 * SCALING_PARTITIONS partitions and one project per run, so that neither positions nor the dedup
 * ledger carry over), each next to PostgreSQL's INSERT … SELECT of the same rows in the same run,
 * plus the CPU each kind of process spent per event while the group drained.
 */
export async function processorScalingScenario(
  ctx: BenchContext,
  env: KafkaPg,
  log: (line: string) => void,
): Promise<{ rows: Row[]; rssMb: number }> {
  const total = ctx.scalingEvents;
  const events = benchBatch(total, WINDOW, DAY);
  const stamp = Date.now();
  const runs = SCALING_INSTANCES.map((n) => ({
    n,
    topic: `bench-scale-${n}-${stamp}`,
    project: `bench-scale-${n}`,
  }));
  await ensureTopics({
    brokers: [env.bootstrap],
    topics: runs.map((r) => r.topic),
    partitions: SCALING_PARTITIONS,
  });
  const producer = benchProducer(env.bootstrap);
  try {
    log(
      `pre-filling ${runs.length} topics of ${SCALING_PARTITIONS} partitions with ${total} encoded events each`,
    );
    for (const r of runs)
      await produceAll(
        producer,
        events.map((e) => toMessage(r.topic, e, r.project)),
      );
  } finally {
    await producer.close();
  }
  const db = new pg.Pool({ connectionString: env.databaseUrl, max: 2 });
  try {
    const servers = await serverPids(db);
    const drains: GroupDrain[] = [];
    for (const r of runs) {
      log(`tally process × ${r.n} (NUM_WORKERS=1 each), one consumer group, raw storage on`);
      const drain = await drainWithGroup(env, db, servers, r.topic, total, r.n);
      log(
        Number.isFinite(drain.rate)
          ? `  ${Math.round(drain.rate)} events/s over ${drain.measured} of the ${total} events (the rest before the window: before all had joined, or in the first commit); ${cpuText(drain.cpuUs)}`
          : `  no rate: the ${total} events were drained before all ${r.n} had joined, or within one poll`,
      );
      drains.push(drain);
    }
    log('PostgreSQL INSERT … SELECT of the same rows');
    const ceiling = await sqlCeiling(db, events, 'bench-scale-sql');
    const rows = scalingRows(
      total,
      ceiling,
      runs.map((r, i) => ({ instances: r.n, ...drains[i] })),
    );
    return { rssMb: Math.max(...drains.map((d) => d.rssMb)), rows };
  } finally {
    await db.end();
  }
}
