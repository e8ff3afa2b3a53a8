import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { startKafkaBroker } from './broker.ts';

/**
 * `npm run kafka`: a single-node Kafka in the foreground on KAFKA_PORT (default 9092), data in
 * `<TALLY_DATA_DIR>/kafka` (default .tally/kafka). Ctrl-C or SIGTERM stops it cleanly.
 */
const config = loadConfig();
const dataDir = join(config.raw.TALLY_DATA_DIR, 'kafka');
process.stdout.write(
  `Starting Kafka on 127.0.0.1:${config.raw.KAFKA_PORT} (data in ${dataDir}); first run downloads the jars with mvn...\n`,
);
const broker = await startKafkaBroker({ port: config.raw.KAFKA_PORT, dataDir, echo: true });
process.stdout.write(
  `Kafka is up: KAFKA_BROKERS=${broker.bootstrap} (log ${join(dataDir, 'logs', 'broker.log')}); Ctrl-C stops it\n`,
);
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write('Stopping Kafka...\n');
  broker.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
