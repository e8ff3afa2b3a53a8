/*
 * The earlier systems' event shapes (README.md, "Compatibility with the earlier systems"): their
 * producers, over HTTP or writing straight into Kafka, keep sending what they sent. Each list
 * gives the names a canonical field may arrive under; src/event/normalize.ts reads the first one
 * present, so the canonical name, listed first, always wins.
 */

/** `type`; `event_type` and `activity_type` are the earlier systems' names for it. */
export const TYPE_NAMES: readonly string[] = ['type', 'event_type', 'activity_type'];

/** `timestamp`; `time_stamp` is an earlier system's name for it. */
export const TIMESTAMP_NAMES: readonly string[] = ['timestamp', 'time_stamp'];

/** `properties`; `data` is an earlier system's name for it. */
export const PROPERTIES_NAMES: readonly string[] = ['properties', 'data'];

/**
 * An earlier system nests `page_url` and `referrer` in a `metadata` object: they stand for the
 * top-level fields when those are absent, and its other keys are the event's properties when it
 * has none. Problems are reported under these field names.
 */
export const METADATA = {
  name: 'metadata',
  pageUrl: 'metadata.page_url',
  referrer: 'metadata.referrer',
  isLifted: (key: string): boolean => key === 'page_url' || key === 'referrer',
} as const;
