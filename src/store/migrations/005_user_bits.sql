-- Exact distinct users without reading one row per user per bucket.
--
-- rollup_users keeps one row per user per bucket (the contract). Counting the distinct users of a
-- 30-day range from it means a union of ~800 k (bucket, user) entries at 10 M events: hundreds of
-- milliseconds. So every user also gets a small per-project number, and each bucket keeps its
-- active users as bit strings over those numbers, in chunks of 8192 users (1 KiB a row). The
-- distinct users of any set of buckets is then bit_or over their chunks plus bit_count: a 30-day
-- summary reads ~30 rows per 8192 users. The batch writer sets the bits of exactly the
-- (bucket, user) rows it inserts into rollup_users, in the same transaction, so both always agree.

CREATE TABLE tally.user_numbers (
  project text    NOT NULL,
  user_id text    NOT NULL,
  num     integer NOT NULL,
  PRIMARY KEY (project, user_id),
  UNIQUE (project, num)
);

-- The next free number of each project. Numbers are handed out in short transactions of their own
-- (src/store/user-numbers.ts), so this row is never locked by a batch transaction.
CREATE TABLE tally.user_number_counters (
  project text    PRIMARY KEY,
  next    integer NOT NULL
);

CREATE TABLE tally.rollup_user_bits (
  project text        NOT NULL,
  level   smallint    NOT NULL CHECK (level IN (0, 1, 2)),
  bucket  timestamptz NOT NULL,
  -- Users numbered chunk * 8192 … chunk * 8192 + 8191; bit k (from the left) is user chunk * 8192 + k.
  chunk   integer     NOT NULL,
  users   bit(8192)   NOT NULL,
  PRIMARY KEY (project, level, bucket, chunk)
);

-- The function that fills user_numbers and rollup_user_bits from the rollup_users rows written
-- before this migration, tally.rebuild_user_bits, and its run over existing data are in
-- migration 007.
