import { deriveDimensions } from '../../src/event/derive.ts';
import type { ColumnarBuilder } from '../../src/query/columnar/builder.ts';
import type { EventRow, VisitRow } from '../../src/query/columnar/rows.ts';
import type { WebDataset } from '../web-dataset.ts';

/** The sessionizer's visit gap (TALLY_SESSION_TIMEOUT_MIN's default). */
export const TIMEOUT_MS = 30 * 60_000;

/**
 * Events as tally.events holds them, and visits cut from the stream. TRICKY: the data set emits
 * each visit whole and never lets a visitor return within 31 min (web-dataset.ts), so "same user
 * as the previous event and at most 30 min later" is the sessionizer's gap rule here; bench/columnar-lab.ts's
 * checkVisits verifies it on a built model.
 */
export function loadWebModel(dataset: WebDataset, builder: ColumnarBuilder): void {
  let open: (VisitRow & { lastTs: number }) | undefined;
  const close = () => {
    if (open !== undefined) builder.addVisit({ ...open, ended_at: open.lastTs });
  };
  for (const batch of dataset.batches(10_000)) {
    for (const e of batch) {
      const d = deriveDimensions(e);
      const row: EventRow = {
        user_id: e.userId,
        ts: e.ts,
        type: e.type,
        session_id: null,
        path: d.path,
        hostname: d.hostname,
        browser: d.browser,
        os: d.os,
        device: d.device,
        country: e.country,
        is_bot: d.bot,
        properties: null,
      };
      builder.addEvent(row);
      if (open === undefined || open.user_id !== e.userId || e.ts - open.lastTs > TIMEOUT_MS) {
        close();
        open = {
          user_id: e.userId,
          session_key: '',
          started_at: e.ts,
          ended_at: e.ts,
          lastTs: e.ts,
          events: 0,
          page_views: 0,
          entry_page: null,
          exit_page: null,
          is_bot: false,
          referrer_host: d.referrerHost,
          channel: d.channel,
          utm_source: d.utmSource,
          utm_medium: d.utmMedium,
          utm_campaign: d.utmCampaign,
          utm_term: d.utmTerm,
          utm_content: d.utmContent,
        };
      }
      open.lastTs = e.ts;
      open.events++;
      open.is_bot ||= d.bot;
      if (e.type === 'page_view') {
        open.page_views++;
        open.entry_page ??= d.path;
        open.exit_page = d.path;
      }
    }
  }
  close();
}
