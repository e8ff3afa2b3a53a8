import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startKafkaBroker, type KafkaBroker } from '../../scripts/kafka/broker.ts';
import { requireTool } from './require-tool.ts';

/**
 * A real single-node Kafka broker on free ports in a temporary directory, stopped and removed
 * after the test. Undefined when java or mvn is missing (the test is then skipped, or fails in
 * CI under TALLY_REQUIRE_ALL_SUITES=1).
 */
export async function startTestKafka(t: TestContext): Promise<KafkaBroker | undefined> {
  if (!requireTool(t, 'java', 'Kafka broker', ['-version'])) return undefined;
  if (!requireTool(t, 'mvn', 'fetches the Kafka jars')) return undefined;
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-kafka-'));
  let broker: KafkaBroker;
  try {
    broker = await startKafkaBroker({ dataDir, heapMb: 384 });
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  t.after(async () => {
    await broker.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  return broker;
}
