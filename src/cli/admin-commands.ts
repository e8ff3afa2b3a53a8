import { InvalidArgumentError, Option, type Command } from 'commander';
import { ApiKeyStore, SCOPES, isValidProject, type ApiKeyRecord, type Scope } from '../auth/api-keys.ts';
import type { Config } from '../config/load.ts';
import { pino } from 'pino';
import { openDatabase, type Database } from '../store/database.ts';
import { findRunningEmbeddedPostgres } from '../store/embedded-postgres.ts';

/**
 * Opens the database for a short admin command: the embedded server already running under
 * `tally start` when there is one (it is left running), otherwise a fresh one (stopped after),
 * or DATABASE_URL. Migrations are applied either way.
 */
async function withDatabase<T>(config: Config, fn: (db: Database) => Promise<T>): Promise<T> {
  // stderr, and quiet: stdout is for the command's answer (a new key must be its last line).
  const level = config.raw.TALLY_LOG_LEVEL === 'info' ? 'warn' : config.raw.TALLY_LOG_LEVEL;
  const logger = pino({ name: 'tally', level }, pino.destination(2));
  // Embedded PostgreSQL allows one server per data dir: when `tally start` runs one, use it.
  const running =
    config.database.kind === 'embedded' ? findRunningEmbeddedPostgres(config.database.dataDir) : undefined;
  const target = running
    ? { kind: 'external' as const, connectionString: running.connectionString }
    : config.database;
  const db = await openDatabase(target, { poolSize: 2, applicationName: 'tally-admin', logger });
  try {
    return await fn(db);
  } finally {
    await db.stop();
  }
}

function formatKey(k: ApiKeyRecord): string {
  const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active';
  return [String(k.id).padStart(4), k.prefix.padEnd(15), k.scope.padEnd(5), k.project, state].join('  ');
}

function projectName(value: string): string {
  if (!isValidProject(value)) {
    throw new InvalidArgumentError("1-128 letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
  return value;
}

/** `tally migrate` and `tally keys create|list|revoke`. */
export function registerAdminCommands(program: Command, configOrExit: () => Config): void {
  program
    .command('migrate')
    .description('Apply the database schema (embedded PostgreSQL or DATABASE_URL) and exit')
    .action(async () => {
      const config = configOrExit();
      await withDatabase(config, async (db) => {
        // openDatabase has migrated; report the state.
        const { rows } = await db.pool.query<{ name: string }>(
          'SELECT name FROM tally.schema_migrations ORDER BY name',
        );
        process.stdout.write(
          `schema up to date on ${db.description}: ${rows.map((r) => r.name).join(', ')}\n`,
        );
      });
    });

  const keys = program.command('keys').description('Manage API keys (stored hashed in PostgreSQL)');
  keys
    .command('create')
    .description('Create an API key; the key is printed once, as the last line')
    .requiredOption('--project <name>', 'project the key reads or writes', projectName)
    .addOption(
      new Option('--scope <scope>', 'write (ingest) or read (queries)').choices(SCOPES).makeOptionMandatory(),
    )
    .action(async (opts: { project: string; scope: Scope }) => {
      const config = configOrExit();
      const { key, record } = await withDatabase(config, (db) =>
        new ApiKeyStore(db.pool).create(opts.project, opts.scope),
      );
      process.stdout.write(
        `created ${record.scope} key ${record.id} (${record.prefix}…) for project ${record.project}.\n` +
          `Store it now: Tally keeps only its hash and cannot show it again.\n${key}\n`,
      );
    });
  keys
    .command('list')
    .description('List API keys (id, prefix, scope, project, state); keys themselves are never shown')
    .action(async () => {
      const config = configOrExit();
      const list = await withDatabase(config, (db) => new ApiKeyStore(db.pool).list());
      if (list.length === 0) {
        process.stdout.write('no API keys: the API is open (project "default") on loopback only\n');
        return;
      }
      process.stdout.write(
        `  id  prefix           scope  project  state\n${list.map(formatKey).join('\n')}\n`,
      );
    });
  keys
    .command('revoke')
    .description('Revoke a key by id or prefix; running instances stop accepting it within seconds')
    .argument('<id|prefix>')
    .action(async (idOrPrefix: string) => {
      const config = configOrExit();
      const revoked = await withDatabase(config, (db) => new ApiKeyStore(db.pool).revoke(idOrPrefix));
      if (!revoked) {
        process.stderr.write(`tally: no API key with id or prefix ${JSON.stringify(idOrPrefix)}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`revoked: ${formatKey(revoked)}\n`);
    });
}
