import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { TallyError } from '../../src/errors/tally-error.ts';
import { userHash, userHashKey, UserHashes } from '../../src/store/user-hash.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';

const CONFIGURED = 'a-test-key-of-more-than-32-characters-0123';

function refusedNaming(variable: string) {
  return (err: unknown) => {
    assert.ok(err instanceof TallyError, String(err));
    assert.equal(err.code, 'TALLY_CONFIG_INVALID');
    assert.match(err.message, new RegExp(variable));
    return true;
  };
}

test('userHashKey without TALLY_USER_HASH_KEY: one key generated and stored, the same for every later caller', async (t) => {
  const db = await startTestPostgres(t);
  const [a, b] = await Promise.all([userHashKey(db.pool, undefined), userHashKey(db.pool, undefined)]);
  assert.equal(a.length, 32);
  assert.ok(a.equals(b), 'concurrent first starts agree');
  assert.ok((await userHashKey(db.pool, undefined)).equals(a), 'a restart reads it back');
  // Set later, another key would leave every stored tombstone unmatched.
  await assert.rejects(userHashKey(db.pool, CONFIGURED), refusedNaming('TALLY_USER_HASH_KEY'));
});

test('userHashKey with TALLY_USER_HASH_KEY: only its fingerprint is stored, another key or none is refused', async (t) => {
  const db = await startTestPostgres(t);
  const key = await userHashKey(db.pool, CONFIGURED);
  assert.ok(key.equals(Buffer.from(CONFIGURED)));
  const { rows } = await db.pool.query<{ key: Buffer | null; fingerprint: Buffer }>(
    'SELECT key, fingerprint FROM tally.user_hash_key',
  );
  assert.equal(rows.length, 1);
  assert.equal(rows[0].key, null, 'the configured key stays out of the database');
  assert.ok(!rows[0].fingerprint.includes(Buffer.from(CONFIGURED)));
  assert.ok((await userHashKey(db.pool, CONFIGURED)).equals(key), 'the same key again');
  await assert.rejects(userHashKey(db.pool, `${CONFIGURED}-other`), refusedNaming('TALLY_USER_HASH_KEY'));
  await assert.rejects(userHashKey(db.pool, undefined), refusedNaming('TALLY_USER_HASH_KEY'));
});

test('UserHashes gives userHash, and TALLY_USER_HASH_KEY must be 32 characters, never echoed', () => {
  // Keys shorter than SHA-256's block, of its size, and longer (hashed first, RFC 2104).
  for (const key of [
    Buffer.from(CONFIGURED),
    randomBytes(32),
    randomBytes(64),
    randomBytes(65),
    randomBytes(200),
  ]) {
    const hashes = new UserHashes(key, 2);
    for (const id of ['a', 'b', 'c', 'a', 'é', '', 'x'.repeat(300), '用户-42']) {
      assert.ok(hashes.of(id).equals(userHash(key, id)), `${key.length}-byte key, ${id}`);
    }
  }
  assert.ok(
    !userHash(Buffer.from(CONFIGURED), 'a').equals(userHash(Buffer.from(`${CONFIGURED}x`), 'a')),
    'keyed',
  );
  const short = 'short-secret-value';
  assert.throws(
    () => loadConfig({ TALLY_USER_HASH_KEY: short }),
    (err: unknown) => {
      assert.ok(err instanceof TallyError);
      assert.equal(err.code, 'TALLY_CONFIG_INVALID');
      assert.match(err.message, /TALLY_USER_HASH_KEY/);
      assert.ok(!err.message.includes(short), 'the secret is not in the message');
      return true;
    },
  );
  assert.equal(loadConfig({ TALLY_USER_HASH_KEY: CONFIGURED }).raw.TALLY_USER_HASH_KEY, CONFIGURED);
});
