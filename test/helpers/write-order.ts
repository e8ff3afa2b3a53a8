import type pg from 'pg';

/** The order in which BatchWriter writes, shared rows last (migrations 009, 016, 024). */
export const WRITE_ORDER = ['keys', 'raw', 'visits', 'version', 'shared'];

/**
 * Logs, with BEFORE INSERT triggers, which of Tally's tables the writes on `pool`'s database
 * insert into, in order. The function returned gives the tables written since its last call,
 * each run of one table once: keys (event_ids), raw (events), visits (sessions, inserted or
 * updated), version (data_versions), shared (the counters, page numbers, minute arrays and user
 * bits).
 */
export async function recordWriteOrder(pool: pg.Pool): Promise<() => Promise<string[]>> {
  const tables: [string, string, string?][] = [
    ['event_ids', 'keys'],
    ['events', 'raw'],
    // Not DELETE: the trigger returns NEW, which a BEFORE DELETE trigger would turn into a skip.
    ['sessions', 'visits', 'INSERT OR UPDATE'],
    ['data_versions', 'version'],
    ['rollup_events', 'shared'],
    ['page_urls', 'shared'],
    ['rollup_pages', 'shared'],
    ['rollup_minute_users', 'shared'],
    ['rollup_user_bits', 'shared'],
  ];
  await pool.query(`
    CREATE TABLE public.write_order (seq bigserial, tbl text NOT NULL);
    CREATE FUNCTION public.log_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO public.write_order (tbl) VALUES (TG_ARGV[0]);
      RETURN NEW;
    END $$;
    ${tables
      .map(
        ([table, label, on = 'INSERT']) =>
          `CREATE TRIGGER log_write BEFORE ${on} ON tally.${table} FOR EACH ROW EXECUTE FUNCTION public.log_write('${label}');`,
      )
      .join('\n')}`);
  return async () => {
    const { rows } = await pool.query<{ seq: string; tbl: string }>(
      'DELETE FROM public.write_order RETURNING seq, tbl',
    );
    const order = rows.sort((a, b) => Number(a.seq) - Number(b.seq)).map((r) => r.tbl);
    return order.filter((tbl, i) => tbl !== order[i - 1]);
  };
}
