-- tally.merge_users (migration 016) puts a batch's new users of a minute into the minute's sorted
-- array without sorting the array again when they are few.
--
-- Why: single events (the micro-batcher's batches of ~25 at random instants of an hour, bench
-- scenario 1) touch ~19 minutes a batch, each with one new user, and 016's merge sorted the whole
-- array of the minute for each: 62 µs a call on arrays of ~400 users, 1.2 ms of the 1.8 ms the
-- minute users' statement took a batch (pg_stat_statements, bench/write-profile.ts single; docs/
-- benchmarks.md, "The minute users' merge"). A binary search and two slices cost ~24 µs at 800.
-- The insertion is O(n) a new user, so from 5 new users on the sort is cheaper, and stays.
--
-- Exactness: both ways return the sorted union of two sorted arrays of distinct numbers, each
-- number once (test/store/merge-users.integration.test.ts compares them with a computation from
-- scratch); every array of tally.rollup_minute_users is sorted and distinct (016, and every
-- write since keeps it so).

CREATE OR REPLACE FUNCTION tally.merge_users(a int4[], b int4[]) RETURNS int4[] LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  r int4[] := a;
  x int4;
  lo int4;
  hi int4;
  mid int4;
BEGIN
  IF cardinality(b) > 4 THEN
    RETURN ARRAY(SELECT DISTINCT u FROM unnest(a || b) AS u ORDER BY u);
  END IF;
  FOREACH x IN ARRAY b LOOP
    -- lo: the first position whose number is not below x (cardinality + 1 if none).
    lo := 1;
    hi := cardinality(r) + 1;
    WHILE lo < hi LOOP
      mid := (lo + hi) / 2;
      IF r[mid] < x THEN
        lo := mid + 1;
      ELSE
        hi := mid;
      END IF;
    END LOOP;
    IF lo > cardinality(r) OR r[lo] <> x THEN
      r := r[1:lo - 1] || x || r[lo:];
    END IF;
  END LOOP;
  RETURN r;
END
$$;
