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

-- Recomputes one project's numbers and bits from rollup_users (this migration, and data sets that
-- write rollup_users directly, like bench/dataset.ts). Not for a project that is being written to.
--
-- TRICKY: PL/pgSQL, not LANGUAGE sql. PostgreSQL up to 17 plans every statement of a SQL function
-- before running the first, so the last INSERT was planned while user_numbers was still empty: a
-- nested loop over it for each rollup_users row. At 300 k events that ran for over 12 minutes on
-- PostgreSQL 15 (3.4 s as PL/pgSQL, which plans each statement when it first runs). The ANALYZE
-- gives that join the real size of the numbers just inserted. Migration 007 replaces the function
-- in databases that created it as LANGUAGE sql.
CREATE FUNCTION tally.rebuild_user_bits(p_project text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO tally.user_numbers (project, user_id, num)
  SELECT p_project, d.user_id,
         coalesce((SELECT max(num) + 1 FROM tally.user_numbers WHERE project = p_project), 0)
           + (row_number() OVER (ORDER BY d.user_id))::int - 1
    FROM (SELECT DISTINCT user_id FROM tally.rollup_users WHERE project = p_project) d
   WHERE NOT EXISTS (SELECT 1 FROM tally.user_numbers n WHERE n.project = p_project AND n.user_id = d.user_id);

  INSERT INTO tally.user_number_counters AS c (project, next)
  SELECT p_project, coalesce(max(num) + 1, 0) FROM tally.user_numbers WHERE project = p_project
  ON CONFLICT (project) DO UPDATE SET next = greatest(c.next, excluded.next);

  ANALYZE tally.user_numbers;

  DELETE FROM tally.rollup_user_bits WHERE project = p_project;

  INSERT INTO tally.rollup_user_bits (project, level, bucket, chunk, users)
  SELECT u.project, u.level, u.bucket, n.num / 8192, bit_or(set_bit(B'0'::bit(8192), n.num % 8192, 1))
    FROM tally.rollup_users u
    JOIN tally.user_numbers n ON n.project = u.project AND n.user_id = u.user_id
   WHERE u.project = p_project
   GROUP BY 1, 2, 3, 4;
END
$$;

SELECT tally.rebuild_user_bits(project) FROM (SELECT DISTINCT project FROM tally.rollup_users) p;
