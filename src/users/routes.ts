import { Readable } from 'node:stream';
import type { Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { TallyError } from '../errors/tally-error.ts';
import type { DataVersions } from '../store/data-versions.ts';
import { classifyPgError } from '../store/pg-errors.ts';
import { listAudit } from '../store/user-audit.ts';
import { deleteUser } from '../store/user-deletion.ts';
import { exportUser } from '../store/user-export.ts';
import { userHash } from '../store/user-hash.ts';
import { parseSince } from './audit-since.ts';
import {
  adminErrorResponses,
  AuditQuery,
  AuditResponse,
  DeleteQuery,
  exportBusyResponse,
  ExportResponse,
  inexactResponse,
  ProjectQuery,
  UserDeletionResponse,
  UserParams,
} from './schemas.ts';

/** Exports streaming at once per process (each holds a pooled connection, TALLY_DB_POOL_SIZE). */
const MAX_CONCURRENT_EXPORTS = 2;

export interface UserRoutesDeps {
  pool: pg.Pool;
  /** The deployment's user hash key (src/store/user-hash.ts `userHashKey`). */
  hashKey: Buffer;
  /** This process's data versions: a deletion's version is observed before its 200 (read-your-writes). */
  versions: Pick<DataVersions, 'observe'>;
  /**
   * Removes the project's cached answers (QueryLayer.purgeCache), called once a deletion has
   * committed; never throws (a failing cache is logged, and its entries expire by TTL).
   */
  purgeCache: (project: string) => Promise<unknown>;
}

/**
 * Who acts, for the audit: the admin key of `project`. src/auth/http-auth.ts already refused
 * other scopes; this holds even in an app built without auth, where there is no key at all.
 */
function adminActor(request: FastifyRequest, project: string): string {
  const auth = request.tallyAuth;
  if (auth === null || auth.scope !== 'admin') {
    throw new TallyError('TALLY_FORBIDDEN', 'deleting and exporting users needs an admin key');
  }
  if (auth.project !== project) {
    throw new TallyError('TALLY_FORBIDDEN', `this admin key is for project ${auth.project}, not ${project}`);
  }
  return `key:${auth.keyId}`;
}

/**
 * The user's rights (issue 22, README.md "Users: delete and export"): `DELETE /v1/users/:user_id`,
 * `GET /v1/users/:user_id/export` (NDJSON, streamed) and `GET /v1/admin/audit`, for admin keys.
 */
export function userRoutes(deps: UserRoutesDeps) {
  const { pool, hashKey, versions, purgeCache } = deps;
  let exporting = 0;
  return async function plugin(app: FastifyInstance): Promise<void> {
    const tags = ['admin'];
    app.delete<{ Params: Static<typeof UserParams>; Querystring: Static<typeof DeleteQuery> }>(
      '/v1/users/:user_id',
      {
        schema: {
          tags,
          summary:
            "Delete a user: raw events, visits, dead letters and every rollup corrected as if the user's events had never been sent; later events are dropped",
          params: UserParams,
          querystring: DeleteQuery,
          response: { 200: UserDeletionResponse, ...adminErrorResponses, ...inexactResponse },
        },
      },
      async (request) => {
        const { project, allow_inexact: allowInexact } = request.query;
        const actor = adminActor(request, project);
        // deleteUser's errors are coded already (TALLY_DELETE_INEXACT, the database's).
        const deletion = await deleteUser(pool, {
          project,
          userId: request.params.user_id,
          actor,
          key: hashKey,
          allowInexact,
        });
        // The next answer of this process must not come from before the deletion (design §3):
        // the version moves here rather than a moment later with the NOTIFY.
        if (deletion.version !== null) {
          versions.observe(new Map([[project, deletion.version]]));
          // The version already keeps every older answer from being read; this takes the deleted
          // user's numbers out of the caches at once rather than at their TTL (issue 22). Only
          // this process's near cache and the shared store: other processes' in-memory entries
          // are under older versions, never read again.
          await purgeCache(project);
        }
        return deletion;
      },
    );

    app.get<{ Params: Static<typeof UserParams>; Querystring: Static<typeof ProjectQuery> }>(
      '/v1/users/:user_id/export',
      {
        // A HEAD would run an export (and record it) only to throw the body away.
        exposeHeadRoute: false,
        schema: {
          tags,
          summary:
            'Everything stored about a user as NDJSON, streamed: a header line with the counts, then events, visits, user number, dead letters, tombstone and audit records, then {"kind":"end"}',
          params: UserParams,
          querystring: ProjectQuery,
          produces: ['application/x-ndjson'],
          response: { 200: ExportResponse, ...adminErrorResponses, ...exportBusyResponse },
        },
      },
      async (request, reply) => {
        const { project } = request.query;
        const actor = adminActor(request, project);
        // Each export holds a pooled connection for as long as its client reads: a few at a
        // time, so that ingest and queries keep theirs.
        if (exporting >= MAX_CONCURRENT_EXPORTS) {
          throw new TallyError(
            'TALLY_UNAVAILABLE',
            `${MAX_CONCURRENT_EXPORTS} exports are running on this instance; retry when one has ended`,
          );
        }
        exporting += 1;
        let first: IteratorResult<string>;
        const lines = exportUser(pool, { project, userId: request.params.user_id, actor, key: hashKey });
        try {
          // TRICKY: the first line waits for the snapshot and the committed audit row. Until
          // then a failure is a coded error answer; once the 200 has gone out it can only cut
          // the body short, which the missing {"kind":"end"} line shows.
          first = await lines.next();
        } catch (err) {
          exporting -= 1;
          throw classifyPgError(err);
        }
        const body = Readable.from(rest(first, lines), { objectMode: false });
        // TRICKY: however the body ends (sent, the client gone, or destroyed before its first
        // read, which never starts `rest` and so never reaches its end), the snapshot ends and
        // its connection returns here; returning a finished export does nothing.
        body.once('close', () => {
          exporting -= 1;
          lines.return(undefined).catch(() => undefined);
        });
        void reply.type('application/x-ndjson; charset=utf-8');
        return reply.send(body);
      },
    );

    app.get<{ Querystring: Static<typeof AuditQuery> }>(
      '/v1/admin/audit',
      {
        exposeHeadRoute: false,
        schema: {
          tags,
          summary:
            "The deletions and exports of the project's users, newest first (who, when, how many events)",
          querystring: AuditQuery,
          response: { 200: AuditResponse, ...adminErrorResponses },
        },
      },
      async (request) => {
        const q = request.query;
        adminActor(request, q.project);
        const records = await listAudit(pool, {
          project: q.project,
          userHash: q.user_id === undefined ? undefined : userHash(hashKey, q.user_id),
          since: q.since === undefined ? undefined : parseSince(q.since),
          limit: q.limit,
        }).catch((err: unknown) => {
          throw classifyPgError(err);
        });
        return { project: q.project, records };
      },
    );
  };
}

/** The lines again, the one already read first. */
async function* rest(first: IteratorResult<string>, lines: AsyncGenerator<string>): AsyncGenerator<string> {
  if (first.done === true) return;
  yield first.value;
  yield* lines;
}
