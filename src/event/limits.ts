/** Field limits, as README.md ("Ingest") lists them. Lengths are counted in UTF-16 code units. */
export const LIMITS = {
  eventId: 128,
  type: 128,
  userId: 256,
  url: 2048,
  shortField: 256,
  userAgent: 1024,
  propertiesBytes: 32 * 1024,
} as const;

export const PAGE_VIEW_TYPE = 'page_view';
