import type pg from 'pg';

/** write: ingest; read: queries; admin: delete and export users, read their audit (issue 22). */
export type Scope = 'read' | 'write' | 'admin';

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
   * Stores a key by its hash and display prefix. `first` is true when no key (revoked ones
   * included) existed before. A prefix collision fails with 23505 (unique_violation).
   */
  async insert(
    project: string,
    scope: Scope,
    keyHash: Buffer,
    prefix: string,
  ): Promise<{ record: ApiKeyRecord; first: boolean }> {
    // The CTE reads the table as it was before this INSERT.
    const { rows } = await this.#pool.query<KeyRow & { first: boolean }>(
      `WITH before AS (SELECT NOT EXISTS (SELECT 1 FROM tally.api_keys) AS first)
       INSERT INTO tally.api_keys (project, scope, key_hash, prefix) VALUES ($1, $2, $3, $4)
       RETURNING id, project, scope, prefix, created_at, revoked_at, (SELECT first FROM before)`,
      [project, scope, keyHash, prefix],
    );
    return { record: toRecord(rows[0]), first: rows[0].first };
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
