-- tally.rebuild_user_bits as PL/pgSQL, for databases whose migration 005 created it as
-- LANGUAGE sql: on PostgreSQL up to 17 that version plans its last INSERT before the user numbers
-- exist and takes minutes instead of seconds (see 005_user_bits.sql, which now creates this one).
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
