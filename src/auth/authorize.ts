import type { Scope } from './api-keys.ts';
import type { KeySet } from './key-set.ts';

/** The project a request acts on while no API key exists (README.md, "API keys and projects"). */
export const DEFAULT_PROJECT = 'default';

export type Authorization =
  | { ok: true; project: string; keyId: number | null }
  | { ok: false; code: 'TALLY_UNAUTHORIZED' | 'TALLY_FORBIDDEN'; message: string };

/**
 * The one auth decision, shared by HTTP (src/auth/http-auth.ts) and any other transport (gRPC
 * metadata): which project may a request holding `key` act on with `scope`? Without any
 * key configured, everything is the open `default` project, except `admin`: deleting and
 * exporting users is never open (the CLI does it without keys, with database access).
 */
export function authorize(keys: KeySet, key: string | undefined, scope: Scope): Authorization {
  if (!keys.authRequired) {
    if (scope === 'admin') {
      return {
        ok: false,
        code: 'TALLY_FORBIDDEN',
        message:
          'the admin API needs an admin key, and no API key exists: create one (tally keys create --project <name> --scope admin) or use tally users',
      };
    }
    return { ok: true, project: DEFAULT_PROJECT, keyId: null };
  }
  if (key === undefined || key === '') {
    return {
      ok: false,
      code: 'TALLY_UNAUTHORIZED',
      message: 'an API key is required: send Authorization: Bearer <key> or X-Api-Key: <key>',
    };
  }
  const grant = keys.lookup(key);
  if (!grant) return { ok: false, code: 'TALLY_UNAUTHORIZED', message: 'unknown or revoked API key' };
  if (grant.scope !== scope) {
    return {
      ok: false,
      code: 'TALLY_FORBIDDEN',
      message: `this key has ${grant.scope} scope; ${scope === 'admin' ? 'an' : 'a'} ${scope} key is needed`,
    };
  }
  return { ok: true, project: grant.project, keyId: grant.keyId };
}
