import { Command } from 'commander';
import { loadConfig, type Config } from '../config/load.ts';
import { TallyError } from '../errors/tally-error.ts';
import { createLogger } from '../observability/logger.ts';
import { startEmbeddedTally } from './embedded-tally.ts';
import { handleShutdown } from './lifecycle.ts';

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

program
  .command('start')
  .description('Run everything in one process (embedded PostgreSQL unless DATABASE_URL/DB_* is set)')
  .action(async () => {
    const config = configOrExit();
    const logger = createLogger(config.raw.TALLY_LOG_LEVEL);
    const tally = await startEmbeddedTally(config, logger);
    handleShutdown(() => tally.stop(), logger);
    logger.info(
      `Tally is up: API ${tally.url} (docs ${tally.url}/docs, metrics ${tally.url}/metrics); ${tally.database.description}`,
    );
  });

await program.parseAsync(process.argv);
