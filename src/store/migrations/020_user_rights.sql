-- The user's rights (issue 22): deleting and exporting one user. This migration holds the tables
-- only; the deletion (tally.delete_user) and the batches' check against tombstones come with
-- their own migrations.
--
-- tally.user_tombstones: one row per deleted (project, user), keyed by a keyed hash of the user id
-- (HMAC-SHA256 under TALLY_USER_HASH_KEY, src/store/user-hash.ts), never the id itself. A batch
-- drops the events of a tombstoned user and counts them here, so late events, Kafka replays,
-- dead-letter replays and client retries never bring a deleted user back. Kept for good: events
-- can be replayed from Kafka for as long as its retention, and clients retry without bound.
CREATE TABLE tally.user_tombstones (
  project text NOT NULL,
  user_hash bytea NOT NULL CHECK (length(user_hash) = 32),
  deleted_at timestamptz NOT NULL DEFAULT now(),
  dropped_events bigint NOT NULL DEFAULT 0,
  last_dropped_at timestamptz,
  PRIMARY KEY (project, user_hash)
);

-- tally.user_audit: every deletion and export (who, when, how many events), the user again as
-- its hash; queryable by project, user and time.
CREATE TABLE tally.user_audit (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  project text NOT NULL,
  action text NOT NULL CHECK (action IN ('delete', 'export')),
  user_hash bytea NOT NULL CHECK (length(user_hash) = 32),
  actor text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('ok', 'failed')),
  events bigint NOT NULL DEFAULT 0,
  detail jsonb
);
CREATE INDEX user_audit_project_at ON tally.user_audit (project, at DESC);
CREATE INDEX user_audit_user ON tally.user_audit (project, user_hash, at DESC);

-- The admin scope: keys that may delete and export users, and read the audit.
ALTER TABLE tally.api_keys DROP CONSTRAINT api_keys_scope_check;
ALTER TABLE tally.api_keys ADD CONSTRAINT api_keys_scope_check CHECK (scope IN ('read', 'write', 'admin'));
