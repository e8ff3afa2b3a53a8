import { createHash, randomBytes } from 'node:crypto';
import type pg from 'pg';

export type Scope = 'read' | 'write';

/** The project of requests made without a key, while no key exists (see `tally keys create`). */
export const KEYLESS_PROJECT = 'default';
export const SCOPES: readonly Scope[] = ['read', 'write'];

export interface ApiKeyRecord {
  id: number;
  project: string;
  scope: Scope;
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/** A key as the auth layer sees it: its hash and what it grants. */
export interface StoredKey {
  id: number;
  project: string;
  scope: Scope;
  hashHex: string;
  revoked: boolean;
}

const KEY_PREFIX = 'tally_';
// 32 random bytes = 256 bits, base64url: 43 characters.
const KEY_PATTERN = /^tally_[A-Za-z0-9_-]{43}$/;
const DISPLAY_CHARS = KEY_PREFIX.length + 8;
const PROJECT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A new random key: `tally_` + 256 bits in base64url. Shown once, never stored. */
export function generateKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** True when `value` has the shape of a Tally key (cheap check before hashing). */
export function looksLikeKey(value: string): boolean {
  return KEY_PATTERN.test(value);
}

/** SHA-256 of the key: what the database stores and the auth layer looks up. */
export function hashKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export function displayPrefix(key: string): string {
  return key.slice(0, DISPLAY_CHARS);
}

export function isValidProject(project: string): boolean {
  return PROJECT_PATTERN.test(project);
}

interface KeyRow {
  id: number;
  project: string;
  scope: Scope;
  prefix: string;
  created_at: Date;
  revoked_at: Date | null;
}

function toRecord(r: KeyRow): ApiKeyRecord {
  return {
    id: Number(r.id),
    project: r.project,
    scope: r.scope,
    prefix: r.prefix,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  };
}

/** `tally.api_keys` (migration 003): create, list, revoke, and load for the auth cache. */
export class ApiKeyStore {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /**
   * Creates a key and returns it with its record; the key is not recoverable afterwards. `first`
   * is true when no key (revoked ones included) existed before: auth has just been switched on.
   */
  async create(
    project: string,
    scope: Scope,
  ): Promise<{ key: string; record: ApiKeyRecord; first: boolean }> {
    if (!isValidProject(project)) {
      throw new Error(
        `invalid project name ${JSON.stringify(project)}: 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`,
      );
    }
    // A prefix collision (48 random bits) is astronomically rare, but retrying costs nothing.
    for (let attempt = 0; ; attempt++) {
      const key = generateKey();
      try {
        // The CTE reads the table as it was before this INSERT.
        const { rows } = await this.#pool.query<KeyRow & { first: boolean }>(
          `WITH before AS (SELECT NOT EXISTS (SELECT 1 FROM tally.api_keys) AS first)
           INSERT INTO tally.api_keys (project, scope, key_hash, prefix) VALUES ($1, $2, $3, $4)
           RETURNING id, project, scope, prefix, created_at, revoked_at, (SELECT first FROM before)`,
          [project, scope, hashKey(key), displayPrefix(key)],
        );
        return { key, record: toRecord(rows[0]), first: rows[0].first };
      } catch (err) {
        if ((err as { code?: string }).code !== '23505' || attempt >= 3) throw err;
      }
    }
  }

  async list(): Promise<ApiKeyRecord[]> {
    const { rows } = await this.#pool.query<KeyRow>(
      'SELECT id, project, scope, prefix, created_at, revoked_at FROM tally.api_keys ORDER BY id',
    );
    return rows.map(toRecord);
  }

  /**
   * Revokes the key with this id or display prefix. Returns the revoked record, or undefined
   * when no key matches. Revoking twice keeps the first revocation time.
   */
  async revoke(idOrPrefix: string): Promise<ApiKeyRecord | undefined> {
    const byId = /^\d{1,15}$/.test(idOrPrefix);
    const { rows } = await this.#pool.query<KeyRow>(
      `UPDATE tally.api_keys SET revoked_at = coalesce(revoked_at, now())
       WHERE ${byId ? 'id = $1::bigint' : 'prefix = $1'}
       RETURNING id, project, scope, prefix, created_at, revoked_at`,
      [idOrPrefix],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** Every key, revoked ones included (their existence alone keeps auth switched on). */
  async loadAll(): Promise<StoredKey[]> {
    const { rows } = await this.#pool.query<{
      id: number;
      project: string;
      scope: Scope;
      hash_hex: string;
      revoked: boolean;
    }>(
      `SELECT id, project, scope, encode(key_hash, 'hex') AS hash_hex, revoked_at IS NOT NULL AS revoked
       FROM tally.api_keys`,
    );
    return rows.map((r) => ({
      id: Number(r.id),
      project: r.project,
      scope: r.scope,
      hashHex: r.hash_hex,
      revoked: r.revoked,
    }));
  }
}
