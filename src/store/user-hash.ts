import { createHmac, hash, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import { TallyError } from '../errors/tally-error.ts';

/**
 * The keyed hash a deleted user is remembered by (tally.user_tombstones, tally.user_audit):
 * HMAC-SHA256 of the user id under the deployment's TALLY_USER_HASH_KEY. Not the id itself, so the
 * tombstones hold no personal data; keyed, so a list of candidate ids (e-mail addresses) cannot be
 * matched against them without the key. The project is a column beside it, not part of the hash:
 * `tally projects move` moves tombstones as they are.
 */
export function userHash(key: Buffer, userId: string): Buffer {
  return createHmac('sha256', key).update(userId, 'utf8').digest();
}

/** Bytes of the key generated when TALLY_USER_HASH_KEY is not set. */
const GENERATED_KEY_BYTES = 32;

/**
 * The key of the user hashes of this database (tally.user_hash_key, migration 021), the same for
 * every process that writes or deletes: `configured` (TALLY_USER_HASH_KEY) when set, checked
 * against the fingerprint stored by the first process that used one; else the key the first
 * process generated and stored. A key that differs from the one the stored hashes were made with
 * would match no tombstone, and bring deleted users back: TALLY_CONFIG_INVALID, at start-up.
 *
 * TRICKY: concurrent first starts (processor workers) race to insert the row; ON CONFLICT keeps the
 * first, and every process then reads that one.
 */
export async function userHashKey(pool: pg.Pool, configured: string | undefined): Promise<Buffer> {
  const offered =
    configured === undefined ? randomBytes(GENERATED_KEY_BYTES) : Buffer.from(configured, 'utf8');
  await pool.query(
    `INSERT INTO tally.user_hash_key (id, key, fingerprint) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING`,
    // A configured key stays in the deployment's secrets, never in the database.
    [configured === undefined ? offered : null, keyFingerprint(offered)],
  );
  const { rows } = await pool.query<{ key: Buffer | null; fingerprint: Buffer }>(
    'SELECT key, fingerprint FROM tally.user_hash_key WHERE id = 1',
  );
  const stored = rows[0];
  if (configured === undefined) {
    if (stored.key === null) {
      throw new TallyError(
        'TALLY_CONFIG_INVALID',
        'TALLY_USER_HASH_KEY is not set, but the user hashes of this database (tombstones of deleted users, the audit) were made with a key given in it: set TALLY_USER_HASH_KEY to that key',
      );
    }
    return stored.key;
  }
  if (!stored.fingerprint.equals(keyFingerprint(offered))) {
    throw new TallyError(
      'TALLY_CONFIG_INVALID',
      `TALLY_USER_HASH_KEY is not the key the user hashes of this database (tombstones of deleted users, the audit) were made with (${stored.key === null ? 'another TALLY_USER_HASH_KEY' : 'the key Tally generated, as TALLY_USER_HASH_KEY was not set'}): with another key deleted users would come back; set it to that key${stored.key === null ? '' : ', or unset it'}`,
    );
  }
  return offered;
}

/** What tally.user_hash_key stores of a configured key: the HMAC of a fixed text, which tells keys apart and reveals neither. */
function keyFingerprint(key: Buffer): Buffer {
  return createHmac('sha256', key).update('tally:fingerprint', 'utf8').digest();
}

/** SHA-256's block size: HMAC pads its key to it (RFC 2104). */
const BLOCK_BYTES = 64;

/**
 * userHash under one key, remembered per user id: a batch hashes each distinct user of its events,
 * and most users come back batch after batch.
 *
 * TRICKY: a batch of web traffic brings hundreds of new users, and createHmac costs ~20 µs a call
 * (it sets up a key and a digest context each time); the same HMAC (RFC 2104:
 * H((K ^ opad) || H((K ^ ipad) || m)), the padded key computed once) from two one-shot hashes costs
 * a fifth of that. test/store/user-hash.integration.test.ts checks that it equals userHash.
 */
export class UserHashes {
  readonly #inner: Buffer;
  readonly #outer: Buffer;
  readonly #cache: LRUCache<string, Buffer>;

  constructor(key: Buffer, cacheSize = 100_000) {
    const block = Buffer.alloc(BLOCK_BYTES);
    (key.length > BLOCK_BYTES ? hash('sha256', key, 'buffer') : key).copy(block);
    this.#inner = Buffer.from(block.map((b) => b ^ 0x36));
    this.#outer = Buffer.from(block.map((b) => b ^ 0x5c));
    this.#cache = new LRUCache({ max: cacheSize });
  }

  of(userId: string): Buffer {
    let h = this.#cache.get(userId);
    if (h === undefined) {
      const inner = hash('sha256', Buffer.concat([this.#inner, Buffer.from(userId, 'utf8')]), 'buffer');
      h = hash('sha256', Buffer.concat([this.#outer, inner]), 'buffer');
      this.#cache.set(userId, h);
    }
    return h;
  }
}
