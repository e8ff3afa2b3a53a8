import { createHash, randomBytes } from 'node:crypto';
import type { ApiKeyRecord, ApiKeyStore, Scope } from '../store/api-keys-store.ts';

export type { ApiKeyRecord, Scope, StoredKey } from '../store/api-keys-store.ts';

export const SCOPES: readonly Scope[] = ['read', 'write', 'admin'];

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

/**
 * Creates a key for `project` with `scope` and returns it with its record; the key is shown once
 * and not recoverable afterwards. `first` is true when no key (revoked ones included) existed
 * before: auth has just been switched on.
 */
export async function createApiKey(
  store: ApiKeyStore,
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
      const { record, first } = await store.insert(project, scope, hashKey(key), displayPrefix(key));
      return { key, record, first };
    } catch (err) {
      if ((err as { code?: string }).code !== '23505' || attempt >= 3) throw err;
    }
  }
}
