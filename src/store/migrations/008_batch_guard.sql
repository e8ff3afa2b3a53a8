-- The guard of the one-statement batch write (src/store/batch-writer.ts): a batch that assumed
-- all its events were new calls this with how many it sent and how many keys the statement
-- inserted. When some were already stored it raises TL001, which aborts the whole statement
-- (keys, raw rows and rollups alike), and the writer stores the batch the long way instead.
CREATE OR REPLACE FUNCTION tally.require_all_new(sent integer, inserted bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF inserted <> sent THEN
    RAISE EXCEPTION 'batch holds % events already stored', sent - inserted USING ERRCODE = 'TL001';
  END IF;
  RETURN true;
END $$;
