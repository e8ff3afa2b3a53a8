import { InvalidArgumentError, Option, type Command } from 'commander';
import { SCOPES, createApiKey, isValidProject, type ApiKeyRecord, type Scope } from '../auth/api-keys.ts';
import { DEFAULT_PROJECT } from '../auth/authorize.ts';
import { ApiKeyStore } from '../store/api-keys-store.ts';
import type { Config } from '../config/load.ts';
import { pino } from 'pino';
import { TallyError } from '../errors/tally-error.ts';
import { openDatabase, type Database } from '../store/database.ts';
import { findRunningEmbeddedPostgres } from '../store/embedded-postgres.ts';
import { backfillDimensions } from '../store/dimension-backfill.ts';
import { appliedMigrations } from '../store/migrate.ts';
import { countProjectEvents, moveProjectData } from '../store/project-move.ts';
import { classifyPgError, isPgError } from '../store/pg-errors.ts';
import { projectsWithEvents, rebuildSessions } from '../store/sessions-store.ts';
import { markModelRebuild } from '../store/model-feed.ts';

/**
 * Opens the database for a short admin command: the embedded server already running under
 * `tally start` when there is one (it is left running), otherwise a fresh one (stopped after),
 * or DATABASE_URL. Migrations are applied either way.
 */
export async function withDatabase<T>(
  config: Config,
  fn: (db: Database, shared: boolean) => Promise<T>,
): Promise<T> {
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
    // shared: other Tally processes may be using this database right now.
    return await fn(db, target.kind === 'external');
  } finally {
    await db.stop();
  }
}

/** Runs an admin command; a TallyError (e.g. TALLY_ALREADY_RUNNING) is one line on stderr, exit 1. */
export function admin<A extends unknown[]>(
  action: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await action(...args);
    } catch (err) {
      // A PostgreSQL error (a deadlock, a lost connection) gets its code too.
      const coded = err instanceof TallyError ? err : isPgError(err) ? classifyPgError(err) : undefined;
      if (coded === undefined) throw err;
      const retry = coded.retriable ? '; try again' : '';
      process.stderr.write(`tally: ${coded.message} (${coded.code})${retry}\n`);
      process.exitCode = 1;
    }
  };
}

const KEY_COLUMNS = ['id', 'prefix', 'scope', 'project', 'state'] as const;

/** Keys as a table: a header row, columns as wide as their widest cell, ids right-aligned. */
export function formatKeyTable(keys: readonly ApiKeyRecord[]): string {
  const rows = [
    [...KEY_COLUMNS],
    ...keys.map((k) => [
      String(k.id),
      k.prefix,
      k.scope,
      k.project,
      k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active',
    ]),
  ];
  const widths = KEY_COLUMNS.map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) =>
          c === 0 ? cell.padStart(widths[c]) : c === r.length - 1 ? cell : cell.padEnd(widths[c]),
        )
        .join('  '),
    )
    .join('\n');
}

/** What changes when the first key is created, and how to keep the keyless project's data. */
export function firstKeyNotice(keylessEvents: number): string {
  const lines = [
    'tally: this is the first API key: from now on every request needs a key, and requests without one are refused (401), within seconds on running instances.',
  ];
  if (keylessEvents > 0) {
    lines.push(
      `tally: the ${keylessEvents} events of the keyless project "${DEFAULT_PROJECT}" are no longer served without a key. To keep them, either`,
      `  read them with a key of that project:  tally keys create --project ${DEFAULT_PROJECT} --scope read`,
      `  or move them into a named, empty project:  tally projects move ${DEFAULT_PROJECT} <project>`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export function projectName(value: string): string {
  if (!isValidProject(value)) {
    throw new InvalidArgumentError("1-128 letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
  return value;
}

/** `tally migrate`, `tally keys create|list|revoke`, `tally projects move` and `tally sessions rebuild`. */
export function registerAdminCommands(program: Command, configOrExit: () => Config): void {
  program
    .command('migrate')
    .description('Apply the database schema (embedded PostgreSQL or DATABASE_URL) and exit')
    .action(
      admin(async () => {
        const config = configOrExit();
        await withDatabase(config, async (db) => {
          // openDatabase has migrated; derive what older events lack, then report the state.
          // Its progress on stderr at the configured level: on a large database it takes a while.
          await backfillDimensions(
            db.pool,
            pino({ name: 'tally', level: config.raw.TALLY_LOG_LEVEL }, pino.destination(2)),
          );
          const applied = await appliedMigrations(db.pool);
          process.stdout.write(`schema up to date on ${db.description}: ${applied.join(', ')}\n`);
        });
      }),
    );

  const keys = program.command('keys').description('Manage API keys (stored hashed in PostgreSQL)');
  keys
    .command('create')
    .description(
      'Create an API key; the key is printed once, as the last line. The first key switches keyless access off',
    )
    .requiredOption('--project <name>', 'project the key reads or writes', projectName)
    .addOption(
      new Option('--scope <scope>', 'write (ingest), read (queries) or admin (delete and export users)')
        .choices(SCOPES)
        .makeOptionMandatory(),
    )
    .action(
      admin(async (opts: { project: string; scope: Scope }) => {
        const config = configOrExit();
        const { key, record, keylessEvents } = await withDatabase(config, async (db) => {
          const created = await createApiKey(new ApiKeyStore(db.pool), opts.project, opts.scope);
          const keylessEvents = created.first
            ? await countProjectEvents(db.pool, DEFAULT_PROJECT)
            : undefined;
          return { ...created, keylessEvents };
        });
        if (keylessEvents !== undefined) process.stderr.write(firstKeyNotice(keylessEvents));
        process.stdout.write(
          `created ${record.scope} key ${record.id} (${record.prefix}…) for project ${record.project}.\n` +
            `Store it now: Tally keeps only its hash and cannot show it again.\n${key}\n`,
        );
      }),
    );
  keys
    .command('list')
    .description('List API keys (id, prefix, scope, project, state); keys themselves are never shown')
    .action(
      admin(async () => {
        const config = configOrExit();
        const list = await withDatabase(config, (db) => new ApiKeyStore(db.pool).list());
        if (list.length === 0) {
          process.stdout.write(
            `no API keys: the API is open (project "${DEFAULT_PROJECT}") on loopback only\n`,
          );
          return;
        }
        process.stdout.write(`${formatKeyTable(list)}\n`);
      }),
    );
  keys
    .command('revoke')
    .description('Revoke a key by id or prefix; running instances stop accepting it within seconds')
    .argument('<id|prefix>')
    .action(
      admin(async (idOrPrefix: string) => {
        const config = configOrExit();
        const revoked = await withDatabase(config, (db) => new ApiKeyStore(db.pool).revoke(idOrPrefix));
        if (!revoked) {
          process.stderr.write(`tally: no API key with id or prefix ${JSON.stringify(idOrPrefix)}\n`);
          process.exitCode = 1;
          return;
        }
        process.stdout.write(`revoked:\n${formatKeyTable([revoked])}\n`);
      }),
    );

  const projects = program.command('projects').description("Manage projects' stored data");
  projects
    .command('move')
    .description(
      `Move all stored data of project <from> (e.g. the keyless "${DEFAULT_PROJECT}") into project <to>, which must hold none; one transaction`,
    )
    .argument('<from>', 'project whose data moves', projectName)
    .argument('<to>', 'empty project that receives it', projectName)
    .action(
      admin(async (from: string, to: string) => {
        const config = configOrExit();
        const { moved, shared } = await withDatabase(config, async (db, shared) => ({
          moved: await moveProjectData(db.pool, from, to),
          shared,
        }));
        process.stdout.write(
          `moved project ${from} into ${to}: ${moved.events} events (${Object.entries(moved.rows)
            .map(([table, n]) => `${table} ${n}`)
            .join(', ')})\n`,
        );
        if (shared) {
          // known-user-rows.ts: a running process remembers which users of `from` it has stored.
          process.stderr.write(
            `tally: restart the Tally processes that were running before writing to project ${from} again (they remember its users and would miss them in its unique-user counts)\n`,
          );
        }
      }),
    );

  const sessions = program.command('sessions').description('Manage the stored visits (tally.sessions)');
  sessions
    .command('rebuild')
    .description(
      'Recompute the visits of a project (default: every project) from its raw events, with TALLY_SESSION_TIMEOUT_MIN, and store that timeout as the one its visits are built with; one transaction per project, no statement timeout, batches of that project wait for it. Visits that ended before the oldest raw event stay as they are',
    )
    .option('--project <name>', 'only this project', projectName)
    .action(
      admin(async (opts: { project?: string }) => {
        const config = configOrExit();
        const timeoutMs = config.raw.TALLY_SESSION_TIMEOUT_MIN * 60_000;
        await withDatabase(config, async (db) => {
          const projects = opts.project === undefined ? await projectsWithEvents(db.pool) : [opts.project];
          for (const project of projects) {
            const visits = await rebuildSessions(db.pool, project, timeoutMs);
            process.stdout.write(`rebuilt the visits of project ${project}: ${visits} visits\n`);
          }
        });
      }),
    );

  program
    .command('model')
    .description('Manage the columnar read model of the `tally query` processes (TALLY_READ_MODEL)')
    .command('rebuild')
    .description(
      'Make every running query process reload its read model of a project (default: every project) from PostgreSQL; each answers from PostgreSQL until it has reloaded. For repairs made outside Tally: its own writes reach the model by themselves',
    )
    .option('--project <name>', 'only this project', projectName)
    .action(
      admin(async (opts: { project?: string }) => {
        const config = configOrExit();
        await withDatabase(config, async (db) => {
          await markModelRebuild(db.pool, opts.project === undefined ? 'all' : [opts.project]);
          process.stdout.write(
            `asked every query process to reload ${opts.project === undefined ? 'every project' : `project ${opts.project}`}\n`,
          );
        });
      }),
    );
}
