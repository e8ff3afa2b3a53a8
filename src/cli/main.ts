import { Command, InvalidArgumentError } from 'commander';
import { loadConfig, type Config } from '../config/load.ts';
import { TallyError } from '../errors/tally-error.ts';
import { createLogger } from '../observability/logger.ts';
import { registerAdminCommands } from './admin-commands.ts';
import { startEmbeddedTally } from './embedded-tally.ts';
import { handleShutdown } from './lifecycle.ts';
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

const program = new Command('tally').description('Real-time user-activity analytics').showHelpAfterError();
// tally migrate, tally keys create|list|revoke
registerAdminCommands(program, configOrExit);

program
  .command('start')
  .description('Run everything in one process (embedded PostgreSQL unless DATABASE_URL/DB_* is set)')
  .action(async () => {
    const config = configOrExit();
    const logger = createLogger(config.raw.TALLY_LOG_LEVEL);
    const tally = await startEmbeddedTally(config, logger).catch((err: unknown) => {
      // e.g. refusing a non-loopback TALLY_HOST without API keys: say why, not a stack trace.
      if (!(err instanceof TallyError && err.code === 'TALLY_CONFIG_INVALID')) throw err;
      process.stderr.write(`tally: ${err.message}\n`);
      process.exit(2);
    });
    handleShutdown(() => tally.stop(), logger);
    logger.info(
      `Tally is up: API ${tally.url} (docs ${tally.url}/docs, metrics ${tally.url}/metrics); ${tally.database.description}`,
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

await program.parseAsync(process.argv);
