import { userInfo } from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { pino } from 'pino';
import type { Config } from '../config/load.ts';
import { purgeProject, redisCacheStore } from '../query/cache.ts';
import { listAudit, type AuditRecord } from '../store/user-audit.ts';
import { deleteUser, type UserDeletion } from '../store/user-deletion.ts';
import { exportUser } from '../store/user-export.ts';
import { userHash, userHashKey } from '../store/user-hash.ts';
import { parseSince } from '../users/audit-since.ts';
import { admin, projectName, withDatabase } from './admin-commands.ts';

/** The audit's actor for the command line: the operating-system user who ran it. */
export function cliActor(): string {
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    // No passwd entry (a container running under an arbitrary uid).
    name = String(process.getuid?.() ?? 'unknown');
  }
  return `cli:${name}`;
}

function userId(value: string): string {
  if (value.length === 0 || value.length > 256) throw new InvalidArgumentError('1-256 characters');
  return value;
}

function auditLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 100_000)
    throw new InvalidArgumentError('an integer from 1 to 100000');
  return n;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** What `tally users delete` prints. */
export function deletionLine(d: UserDeletion): string {
  const what =
    d.version !== null
      ? `${count(d.events, 'event')} and ${count(d.visits, 'visit')} removed, every rollup corrected (data version ${d.version})`
      : d.dead_letters === 0
        ? 'nothing was stored about it'
        : 'no event or visit was stored';
  const letters = d.dead_letters === 0 ? '' : `; ${count(d.dead_letters, 'dead letter')} removed`;
  const inexact =
    d.inexact_days.length === 0
      ? ''
      : `; the event and page counts of ${count(d.inexact_days.length, 'day')} still hold its events (no raw rows were left to subtract): ${d.inexact_days.join(', ')}`;
  return `deleted user ${JSON.stringify(d.user_id)} of project ${d.project}: ${what}${letters}${inexact}; its later events are dropped\n`;
}

const AUDIT_COLUMNS = ['id', 'at', 'action', 'outcome', 'events', 'actor', 'user_hash'] as const;

/** Audit records as a table: a header row, columns as wide as their widest cell. */
export function formatAuditTable(records: readonly AuditRecord[]): string {
  const rows = [
    [...AUDIT_COLUMNS],
    ...records.map((r) => [String(r.id), r.at, r.action, r.outcome, String(r.events), r.actor, r.user_hash]),
  ];
  const widths = AUDIT_COLUMNS.map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return rows
    .map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]))).join('  '))
    .join('\n');
}

/** How long `tally users delete` waits for Redis to accept commands. */
const REDIS_READY_MS = 3000;

/**
 * After a deletion from the command line, with REDIS_URL: removes the project's cached answers
 * from the shared cache, as the DELETE route does (QueryCache.purge). The running processes' own
 * memory is out of reach; its entries are under older versions, never read again. Undefined when
 * done, else what went wrong: the deletion stands, and the entries expire by TALLY_CACHE_TTL_SEC.
 */
export async function purgeSharedCache(redisUrl: string, project: string): Promise<string | undefined> {
  const store = redisCacheStore(redisUrl, pino({ level: 'silent' }));
  try {
    // The store refuses commands until connected (no offline queue): wait for it, briefly.
    const deadline = Date.now() + REDIS_READY_MS;
    while ((await store.health.check()) !== 'ok') {
      if (Date.now() > deadline)
        return `Redis did not answer; its cached answers of project ${project} expire by TALLY_CACHE_TTL_SEC`;
      await new Promise((r) => setTimeout(r, 50));
    }
    await purgeProject(store, project);
    return undefined;
  } catch (err) {
    return `the Redis cache could not be purged (${(err as Error).message}); its answers of project ${project} expire by TALLY_CACHE_TTL_SEC`;
  } finally {
    await store.close();
  }
}

/**
 * `tally users delete|export|audit`: the user's rights (issue 22) from the command line, straight
 * on the database (no API key needed; the HTTP routes need an admin key). Running Tally
 * processes see a deletion through its data version's NOTIFY.
 */
export function registerUserCommands(program: Command, configOrExit: () => Config): void {
  const users = program
    .command('users')
    .description("A user's rights: delete one user everywhere for good, export everything stored about one");
  users
    .command('delete')
    .description(
      "Delete a user of a project: raw events, visits, user number and dead letters removed, every rollup corrected as if the user's events had never been sent, in one transaction; a tombstone (a keyed hash) makes later events of the user be dropped. Deleting an unknown user stores the tombstone too",
    )
    .argument('<user>', 'the user id, as sent in events', userId)
    .requiredOption('--project <name>', 'the project to delete the user from', projectName)
    .option(
      '--allow-inexact',
      'delete even when some days count events of the user whose raw rows are gone (retention, TALLY_STORE_RAW=false); those days stay over-counted and are listed. Without it such a deletion is refused (TALLY_DELETE_INEXACT), nothing changed',
    )
    .action(
      admin(async (user: string, opts: { project: string; allowInexact?: boolean }) => {
        const config = configOrExit();
        const deletion = await withDatabase(config, async (db) =>
          deleteUser(db.pool, {
            project: opts.project,
            userId: user,
            actor: cliActor(),
            key: await userHashKey(db.pool, config.raw.TALLY_USER_HASH_KEY),
            allowInexact: opts.allowInexact === true,
          }),
        );
        process.stdout.write(deletionLine(deletion));
        if (config.redisUrl !== undefined && deletion.version !== null) {
          const problem = await purgeSharedCache(config.redisUrl, opts.project);
          if (problem !== undefined) process.stderr.write(`tally: ${problem}\n`);
        }
      }),
    );
  users
    .command('export')
    .description(
      'Print everything stored about a user of a project as NDJSON on stdout (one snapshot, streamed): a header line with the counts, then its events, visits, user number, dead letters, tombstone and audit records, then {"kind":"end"}; recorded in the audit',
    )
    .argument('<user>', 'the user id, as sent in events', userId)
    .requiredOption('--project <name>', 'the project of the user', projectName)
    .action(
      admin(async (user: string, opts: { project: string }) => {
        const config = configOrExit();
        await withDatabase(config, async (db) => {
          const lines = exportUser(db.pool, {
            project: opts.project,
            userId: user,
            actor: cliActor(),
            key: await userHashKey(db.pool, config.raw.TALLY_USER_HASH_KEY),
          });
          // stdout's pace sets the reading; stdout itself stays open for the process.
          await pipeline(Readable.from(lines, { objectMode: false }), process.stdout, { end: false }).catch(
            (err: unknown) => {
              // A reader that stopped early (`| head`) ends the export, as any Unix tool's output.
              if ((err as { code?: unknown }).code !== 'EPIPE') throw err;
            },
          );
        });
      }),
    );
  users
    .command('audit')
    .description(
      'List the deletions and exports of a project, newest first: when, what, outcome, events, who, the user hash',
    )
    .requiredOption('--project <name>', 'the project', projectName)
    .option('--user <user>', "only this user's records (matched by its keyed hash)", userId)
    .option(
      '--since <time>',
      'only records from this time on: ISO-8601 date-time, epoch ms, or YYYY-MM-DD (UTC)',
    )
    .option('--limit <n>', 'most records to print', auditLimit, 1000)
    .action(
      admin(async (opts: { project: string; user?: string; since?: string; limit: number }) => {
        const config = configOrExit();
        const since = opts.since === undefined ? undefined : parseSince(opts.since);
        const records = await withDatabase(config, async (db) =>
          listAudit(db.pool, {
            project: opts.project,
            userHash:
              opts.user === undefined
                ? undefined
                : userHash(await userHashKey(db.pool, config.raw.TALLY_USER_HASH_KEY), opts.user),
            since,
            limit: opts.limit,
          }),
        );
        process.stdout.write(
          records.length === 0
            ? `no deletions or exports recorded for project ${opts.project}\n`
            : `${formatAuditTable(records)}\n`,
        );
      }),
    );
}
