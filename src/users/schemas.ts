import { Type } from '@sinclair/typebox';
import { ErrorSchema } from '../http/schemas.ts';

export { UserParams } from '../query/schemas.ts';

/** src/auth/api-keys.ts isValidProject, as a schema: a bad name is a 400 naming `project`. */
const Project = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$',
  description:
    "The project, which must be the admin key's own: named explicitly, so a deletion never lands on a project by default",
});

export const ProjectQuery = Type.Object({ project: Project }, { additionalProperties: false });

export const DeleteQuery = Type.Object(
  {
    project: Project,
    allow_inexact: Type.Boolean({
      default: false,
      description:
        'Delete even when some days count events of the user whose raw rows are gone (retention, TALLY_STORE_RAW=false): everything else is removed, those days stay over-counted and are listed in inexact_days. Without it such a deletion is refused (409 TALLY_DELETE_INEXACT), nothing changed',
    }),
  },
  { additionalProperties: false },
);

export const AuditQuery = Type.Object(
  {
    project: Project,
    user_id: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description: "Only this user's records (matched by its keyed hash)",
      }),
    ),
    since: Type.Optional(
      Type.String({
        maxLength: 64,
        description:
          'Only records from this time on: ISO-8601 date-time, epoch milliseconds, or a date (YYYY-MM-DD, 00:00 UTC)',
      }),
    ),
    limit: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 100,
      description: 'Most records to return, newest first',
    }),
  },
  { additionalProperties: false },
);

export const UserDeletionResponse = Type.Object(
  {
    project: Type.String(),
    user_id: Type.String(),
    events: Type.Integer({ description: 'Raw events removed (0 for an unknown or already deleted user)' }),
    visits: Type.Integer({ description: 'Visits removed' }),
    dead_letters: Type.Integer({
      description:
        "Dead letters removed: the project's stored payloads that failed to decode or validate and whose JSON names the user under user_id",
    }),
    version: Type.Union([Type.Integer(), Type.Null()], {
      description: "The project's data version the deletion committed; null when nothing was removed",
    }),
    inexact_days: Type.Array(Type.String({ format: 'date' }), {
      description:
        'Days (UTC) whose event and page counts still hold events of the user that had no raw rows left (only with allow_inexact)',
    }),
  },
  {
    description:
      'The user is deleted: raw events, visits and user number gone, every rollup corrected, and a tombstone (a keyed hash) keeps later events of the user out',
  },
);

export const AuditResponse = Type.Object(
  {
    project: Type.String(),
    records: Type.Array(
      Type.Object({
        id: Type.Integer(),
        at: Type.String({ format: 'date-time' }),
        project: Type.String(),
        action: Type.String({ enum: ['delete', 'export'] }),
        user_hash: Type.String({ description: "The user's keyed hash, hex: the audit keeps no user id" }),
        actor: Type.String({
          description: '`key:<id>` for an API key, `cli:<os user>` for the command line',
        }),
        outcome: Type.String({ enum: ['ok', 'failed'] }),
        events: Type.Integer({ description: 'Events deleted or exported' }),
        detail: Type.Unknown({
          description:
            'More figures of the action (visits, dead letters, data version), or the error of a failure',
        }),
      }),
    ),
  },
  { description: 'Deletions and exports of the project, newest first' },
);

/** The export's 200 (a stream: documented, never serialized through a schema). */
export const ExportResponse = {
  description:
    'NDJSON, one JSON object a line, read on one snapshot: `{"kind":"export", project, user_id, version, events, visits, dead_letters, deleted}`, then `{"kind":"event"|"visit"|"user_number"|"dead_letter"|"tombstone"|"audit", "data":{…stored row}}` (the payload of a dead letter as its text), and last `{"kind":"end"}` (missing: the export was cut short)',
  content: { 'application/x-ndjson': { schema: { type: 'string' } } },
};

const described = (description: string) => ({ ...ErrorSchema, description });

/** An export's own refusal. */
export const exportBusyResponse = {
  503: described(
    'TALLY_UNAVAILABLE: two exports are streaming from this instance already; or TALLY_DB_UNAVAILABLE: PostgreSQL cannot be reached. Retry after Retry-After seconds',
  ),
};

/** A deletion's own refusal. */
export const inexactResponse = {
  409: described(
    'TALLY_DELETE_INEXACT: some days count events of the user whose raw rows are gone, so their counts cannot be corrected; the message lists them. Nothing was deleted; allow_inexact=true deletes the rest',
  ),
};

/** The errors every admin route can answer, each described for the OpenAPI document. */
export const adminErrorResponses = {
  400: described(
    'TALLY_INVALID_QUERY: `project`, `user_id` or another parameter is missing, malformed or unknown; `errors[].field` names it',
  ),
  401: described('TALLY_UNAUTHORIZED: the request has no API key, or an unknown one'),
  403: described(
    "TALLY_FORBIDDEN: the key is not an admin key, `project` is not the key's project, or no API key exists yet (the admin API is never open)",
  ),
  503: described('TALLY_DB_UNAVAILABLE: PostgreSQL cannot be reached; retry after Retry-After seconds'),
};
