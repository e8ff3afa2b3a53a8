import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { test, type TestContext } from 'node:test';
import { findFreePort } from '../../src/util/free-port.ts';
import { spawnTally, type ChildTally } from '../helpers/child-tally.ts';
import { readTopic, startTestKafka } from '../helpers/kafka.ts';
import { metricValue, postBatch, waitFor, workerPids } from '../helpers/kafka-process.ts';

const REQUESTS = 200;
const PER_REQUEST = 10;
const CONCURRENCY = 8;

/** Sends `REQUESTS` batches over `CONCURRENCY` connections; returns the ids of the acknowledged events. */
async function load(url: string, prefix: string): Promise<{ acked: string[]; failed: number }> {
  const acked: string[] = [];
  let failed = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let r = next++; r < REQUESTS; r = next++) {
        const ids = Array.from({ length: PER_REQUEST }, (_, i) => `${prefix}-${r}-${i}`);
        const status = await postBatch(
          url,
          ids.map((event_id) => ({ event_id, type: 'page_view', user_id: `u-${r % 17}` })),
        );
        if (status === 202) acked.push(...ids);
        else failed += 1;
      }
    }),
  );
  return { acked, failed };
}

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** Times `text` occurs in the output so far. */
function occurrences(child: ChildTally, text: string): number {
  return child.output().split(text).length - 1;
}

/** `tally ingest` with two workers; resolves once both serve (each logs that it is up). */
async function spawnTwoWorkers(t: TestContext, bootstrap: string, topic: string): Promise<ChildTally> {
  const ingest = await spawnTally(
    ['ingest'],
    {
      KAFKA_BROKERS: bootstrap,
      KAFKA_TOPIC: topic,
      TALLY_INGEST_WORKERS: '2',
      TALLY_LOG_LEVEL: 'info',
    },
    await findFreePort(),
  );
  t.after(() => {
    if (ingest.child.exitCode === null) ingest.child.kill('SIGKILL');
  });
  await waitFor('both workers serving', () => occurrences(ingest, 'Tally ingest is up') === 2);
  assert.equal((await workerPids(ingest.child.pid!)).length, 2);
  return ingest;
}

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

test('tally ingest with TALLY_INGEST_WORKERS=2', async (t) => {
  const broker = await startTestKafka(t);
  if (broker === undefined) return;

  await t.test(
    'one port, /metrics summed over the workers, a dead worker restarted, SIGTERM exits 0',
    async (t) => {
      const topic = `ingest-workers-${randomUUID()}`;
      const ingest = await spawnTwoWorkers(t, broker.bootstrap, topic);
      const primary = ingest.child.pid!;
      const first = await load(ingest.url, 'a');
      assert.equal(first.failed, 0);
      assert.equal(first.acked.length, REQUESTS * PER_REQUEST);
      // Every scrape, whichever worker answers it, counts the events of both.
      for (let i = 0; i < 4; i++) {
        assert.equal(
          await metricValue(ingest.url, 'tally_ingest_events_total', { outcome: 'accepted' }),
          REQUESTS * PER_REQUEST,
        );
      }

      const [victim, survivor] = await workerPids(primary);
      process.kill(victim, 'SIGKILL');
      await waitFor('the killed worker replaced', async () => {
        const pids = await workerPids(primary);
        return pids.length === 2 && !pids.includes(victim) && pids.includes(survivor);
      });
      await waitFor('the new worker serving', () => occurrences(ingest, 'Tally ingest is up') === 3);
      const second = await load(ingest.url, 'b');
      assert.equal(second.failed, 0);

      const inTopic = new Set(
        (await readTopic(broker.bootstrap, topic)).map(
          (m) => (JSON.parse(m.value!.toString()) as { event_id: string }).event_id,
        ),
      );
      for (const id of [...first.acked, ...second.acked]) assert.ok(inTopic.has(id), `${id} is in Kafka`);

      const workers = await workerPids(primary);
      ingest.child.kill('SIGTERM');
      assert.deepEqual(await ingest.exited, { code: 0, signal: null }, ingest.output());
      for (const pid of workers) assert.ok(gone(pid), 'the workers are gone');
    },
  );

  await t.test('workers whose primary died stop like on SIGTERM (not cut off)', async (t) => {
    const ingest = await spawnTwoWorkers(t, broker.bootstrap, `ingest-workers-${randomUUID()}`);
    const workers = await workerPids(ingest.child.pid!);
    ingest.child.kill('SIGKILL');
    await waitFor('the orphaned workers to exit', () => workers.every(gone), 40_000);
    // Each worker ran its shutdown to the end (lifecycle.ts logs "stopped" then exits 0).
    assert.equal(occurrences(ingest, '"msg":"stopped"'), 2, ingest.output());
  });

  await t.test('a worker that cannot start makes the primary exit 1 (no restart loop)', async () => {
    // No API keys and a non-loopback address: every worker refuses to start (SECURITY.md).
    const child = spawn(process.execPath, [MAIN, 'ingest'], {
      env: {
        ...process.env,
        KAFKA_BROKERS: broker.bootstrap,
        KAFKA_TOPIC: `ingest-workers-${randomUUID()}`,
        TALLY_INGEST_WORKERS: '2',
        TALLY_HOST: '0.0.0.0',
        SERVER_PORT: String(await findFreePort()),
        TALLY_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(code, 1, out);
    assert.match(out, /ingest worker failed to start/);
  });
});
