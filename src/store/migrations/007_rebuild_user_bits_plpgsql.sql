-- Recomputes one project's numbers and bits from rollup_users (existing data, below, and data
-- sets that write rollup_users directly, like bench/dataset.ts). Not for a project that is being
-- written to.
--
-- TRICKY: PL/pgSQL, not LANGUAGE sql. PostgreSQL up to 17 plans every statement of a SQL function
-- before running the first, so the last INSERT was planned while user_numbers was still empty: a
-- nested loop over it for each rollup_users row. At 300 k events that ran for over 12 minutes on
-- PostgreSQL 15 (3.4 s as PL/pgSQL, which plans each statement when it first runs). The ANALYZE
-- gives that join the real size of the numbers just inserted. Databases that ran an earlier
-- version of migration 005 have the SQL function, which this replaces.
CREATE OR REPLACE FUNCTION tally.rebuild_user_bits(p_project text) RETURNS void LANGUAGE plpgsql AS $$
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

-- Rollup rows written before migration 005 have no user numbers yet. Projects that have numbers
-- were rebuilt by that earlier 005, or written by a batch writer that sets the bits itself.
SELECT tally.rebuild_user_bits(p.project)
  FROM (SELECT DISTINCT project FROM tally.rollup_users) p
 WHERE NOT EXISTS (SELECT 1 FROM tally.user_numbers n WHERE n.project = p.project);
