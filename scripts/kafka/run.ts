import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../src/config/load.ts';
import { startKafkaCluster } from './cluster.ts';

/**
 * `npm run kafka`: Kafka in the foreground, data in `<TALLY_DATA_DIR>/kafka` (default
 * .tally/kafka). One node on KAFKA_PORT (default 9092); `-- --brokers 3` starts three nodes on
 * KAFKA_PORT, KAFKA_PORT+1 and KAFKA_PORT+2, replicating topics three times
 * (min.insync.replicas=2), with their data in `node-<i>/`. Ctrl-C or SIGTERM stops it cleanly.
 */
const { values } = parseArgs({ options: { brokers: { type: 'string', default: '1' } } });
const brokers = Number(values.brokers);
if (!Number.isInteger(brokers) || brokers < 1 || brokers > 9) {
  process.stderr.write(`--brokers must be an integer from 1 to 9, got ${values.brokers}\n`);
  process.exit(2);
}
const config = loadConfig();
const dataDir = join(config.raw.TALLY_DATA_DIR, 'kafka');
const ports = Array.from({ length: brokers }, (_, i) => config.raw.KAFKA_PORT + i);
process.stdout.write(
  `Starting ${brokers === 1 ? 'Kafka' : `a ${brokers}-node Kafka cluster`} on 127.0.0.1:${ports.join(',')} (data in ${dataDir}); first run downloads the jars with mvn...\n`,
);
const cluster = await startKafkaCluster({ brokers, ports, dataDir, echo: true });
const logs = brokers === 1 ? join(dataDir, 'logs') : join(dataDir, 'node-*', 'logs');
process.stdout.write(`Kafka is up: KAFKA_BROKERS=${cluster.bootstrap} (logs in ${logs}); Ctrl-C stops it\n`);
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write('Stopping Kafka...\n');
  cluster.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
