-- Covering primary keys: every rollup read (src/query/stats-store.ts) selects count (and page_url,
-- type) by (project, level, bucket range, type); with count in the index those reads are
-- index-only scans instead of one heap page per row. At 10 million events a 30-day top-pages
-- query fetched ~15 k heap pages, 240 ms cold (QUERY_PLANS.md). Updates of count were already
-- not HOT on full pages (fillfactor 100), so the index entry was rewritten anyway.
ALTER TABLE tally.rollup_events
  DROP CONSTRAINT rollup_events_pkey,
  ADD PRIMARY KEY (project, level, bucket, type) INCLUDE (count);
ALTER TABLE tally.rollup_pages
  DROP CONSTRAINT rollup_pages_pkey,
  ADD PRIMARY KEY (project, level, bucket, type, page_url) INCLUDE (count);
