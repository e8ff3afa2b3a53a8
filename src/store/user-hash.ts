import { createHmac } from 'node:crypto';

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
