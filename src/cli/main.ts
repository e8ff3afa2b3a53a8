import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig, type Config } from '../config/load.ts';
import { TallyError } from '../errors/tally-error.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import type { WorkerMessage } from './worker-pool.ts';
import { registerAdminCommands } from './admin-commands.ts';
import { registerUserCommands } from './user-commands.ts';
import { routeGrpcLogs } from './grpc-logs.ts';
import { startEmbeddedTally } from './embedded-tally.ts';
import { startIngestPrimary } from './ingest-primary.ts';
import { startIngestRole } from './ingest-role.ts';
import { handleShutdown, stopWhenOrphaned, stopWithNpm } from './lifecycle.ts';
import { startProcessPrimary, startProcessWorker } from './process-role.ts';
import { startQueryRole } from './query-role.ts';
import { formatReplaySummary, runReplay, type ReplayCommandOptions } from './replay-command.ts';
import { formatSummary, sendActivity } from './send.ts';

function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof TallyError) {
      process.stderr.write(`tally: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/**
 * A role that cannot start (a port in use, a bad setting, a data directory already in use) has
 * released what it opened (role-runner.ts); this says why in one line and exits non-zero.
 * TallyErrors name the setting that changes the outcome; anything else is unexpected, and its
 * stack is logged at debug level.
 */
async function exitOnStartFailure(err: unknown, logger: Logger): Promise<never> {
  const known = err instanceof TallyError;
  if (!known) logger.debug({ err }, 'start-up failed');
  const message = err instanceof Error ? err.message : String(err);
  const line = (known ? message : `could not start: ${message}`).replace(/\s*\n\s*/g, ' ');
  if (cluster.isWorker) {
    // The primary says it (worker-pool.ts): once, however many workers fail the same way.
    const failed: WorkerMessage = { tally: 'start-failed', line };
    await new Promise<void>((resolve) => {
      if (process.send === undefined || !process.connected) resolve();
      else process.send(failed, () => resolve());
    });
  } else {
    process.stderr.write(`tally: ${line}\n`);
  }
  process.exit(known ? 2 : 1);
}

/**
 * Serves a role until SIGTERM, SIGINT, SIGHUP, a fatal error or (under npm) npm's exit, then
 * stops it. A signal during start-up stops the role once it is up, rather than killing the
 * process with the embedded PostgreSQL left running; a failed start ends in exitOnStartFailure.
 */
async function serve<T extends { stop(): Promise<void> }>(
  starting: Promise<T>,
  logger: Logger,
  options: { clusterWorker: boolean },
): Promise<T> {
  const shutdown = handleShutdown(
    () =>
      starting.then(
        (role) => role.stop(),
        () => undefined,
      ),
    logger,
  );
  // Registered before any signal can arrive, so a failed start exits with its one line first.
  const started = starting.catch((err: unknown) => exitOnStartFailure(err, logger));
  // A cluster worker's parent is the primary: stopWhenOrphaned watches it.
  if (options.clusterWorker) stopWhenOrphaned();
  else stopWithNpm(shutdown);
  return started;
}

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('tally')
  .description('Real-time user-activity analytics')
  .version(version, '-v, --version', 'print the version of Tally')
  .showHelpAfterError();
// tally migrate, tally keys create|list|revoke
registerAdminCommands(program, configOrExit);
// tally users delete|export|audit
registerUserCommands(program, configOrExit);

program
  .command('start')
  .description('Run everything in one process (embedded PostgreSQL unless DATABASE_URL/DB_* is set)')
  .action(async () => {
    const config = configOrExit();
    const logger = createLogger(config.raw.TALLY_LOG_LEVEL);
    routeGrpcLogs(logger);
    const tally = await serve(startEmbeddedTally(config, logger), logger, { clusterWorker: false });
    logger.info(
      `Tally is up: API ${tally.url} (docs ${tally.url}/docs, metrics ${tally.url}/metrics), gRPC ${config.host}:${tally.grpcPort}; ${tally.database.description}`,
    );
  });

program
  .command('query')
  .description('Run the query API: REST on TALLY_QUERY_PORT (8081), gRPC on TALLY_GRPC_PORT (50051)')
  .action(async () => {
    const config = configOrExit();
    const logger = createLogger(config.raw.TALLY_LOG_LEVEL);
    routeGrpcLogs(logger);
    const role = await serve(startQueryRole(config, logger), logger, { clusterWorker: false });
    logger.info(
      `Tally query is up: REST ${role.url} (docs ${role.url}/docs), gRPC ${config.host}:${role.grpcPort}, cache ${role.cacheKind}; ${role.database.description}`,
    );
  });

program
  .command('process')
  .description(
    'Consume Kafka into PostgreSQL: NUM_WORKERS consumer group members; /health, /ready, /metrics on METRICS_PORT',
  )
  .action(async () => {
    const config = configOrExit();
    const logger = createLogger(config.raw.TALLY_LOG_LEVEL);
    if (cluster.isPrimary) {
      const primary = await serve(startProcessPrimary(config, logger), logger, { clusterWorker: false });
      logger.info(
        `Tally processor is up: ${config.raw.NUM_WORKERS} worker(s); metrics ${primary.url}/metrics`,
      );
    } else {
      await serve(startProcessWorker(config, logger), logger, { clusterWorker: true });
    }
  });

program
  .command('ingest')
  .description(
    'Serve the ingest API (SERVER_PORT; TALLY_INGEST_WORKERS processes) and publish accepted events to Kafka (KAFKA_BROKERS)',
  )
  .action(async () => {
    const config = configOrExit();
    if (config.kafka === undefined) {
      process.stderr.write(
        'tally: tally ingest needs KAFKA_BROKERS (or KAFKA_BROKER), e.g. localhost:9092\n',
      );
      process.exit(2);
    }
    const logger = createLogger(config.raw.TALLY_LOG_LEVEL);
    if (cluster.isPrimary && config.raw.TALLY_INGEST_WORKERS > 1) {
      await serve(Promise.resolve(startIngestPrimary(config, logger)), logger, { clusterWorker: false });
      logger.info(`Tally ingest: starting ${config.raw.TALLY_INGEST_WORKERS} workers on one port`);
      return;
    }
    const ingest = await serve(startIngestRole(config, logger, { clusterWorker: cluster.isWorker }), logger, {
      clusterWorker: cluster.isWorker,
    });
    if (cluster.isWorker) {
      // The primary stops trying once one worker has started (WorkerPool onStartFailure).
      process.send?.({ tally: 'ready' } satisfies WorkerMessage);
    }
    logger.info(
      `Tally ingest is up: ${ingest.url} → Kafka ${config.kafka?.brokers.join(',')} topic ${config.kafka?.topic}`,
    );
  });

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return n;
  };
}

program
  .command('send')
  .description("Send N random, realistic activity events to a running Tally (seed 000's test-producer.sh N)")
  .argument('<count>', 'how many events', positiveInt('count'))
  .option('--url <url>', 'Tally base URL', `http://localhost:${process.env.SERVER_PORT ?? '8080'}`)
  .option('--rate <events/s>', 'send at most this many events per second', positiveInt('--rate'))
  .option('--concurrency <n>', 'requests in flight', positiveInt('--concurrency'), 16)
  .option('--key <api key>', 'API key with write scope, when keys are configured')
  .action(async (count: number, opts: { url: string; rate?: number; concurrency: number; key?: string }) => {
    const summary = await sendActivity({
      count,
      url: opts.url,
      rate: opts.rate,
      concurrency: opts.concurrency,
      apiKey: opts.key,
      progress: process.stderr.isTTY ? process.stderr : null,
    });
    process.stdout.write(`${formatSummary(summary, opts.url)}\n`);
    process.exitCode = summary.failed + summary.rejected === 0 ? 0 : 1;
  });

program
  .command('replay')
  .description(
    'Re-publish the dead letters of <topic>.dlq to their source topic (after a fix); says how many moved',
  )
  .requiredOption('--topic <topic>', 'the dead-letter topic, e.g. incoming.user_activity.dlq')
  .option('--since <ISO time>', 'only dead letters written at or after this time')
  .option('--dry-run', 'count what would move; produce and commit nothing', false)
  .option('--group <id>', 'consumer group remembering replay progress (default tally-replay.<topic>)')
  .action(async (opts: ReplayCommandOptions) => {
    const config = configOrExit();
    try {
      const summary = await runReplay(config, opts);
      process.stdout.write(`${formatReplaySummary(summary, opts)}\n`);
    } catch (err) {
      process.stderr.write(`tally replay: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  });

await program.parseAsync(process.argv);
