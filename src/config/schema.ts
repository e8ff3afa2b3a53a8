import { Type, type Static } from '@sinclair/typebox';

/**
 * Every environment variable Tally reads, declared once. Values arrive as strings and are
 * converted to the declared type before validation; anything not listed here is ignored, but
 * a `TALLY_*` variable that is not listed is rejected as a likely typo.
 * Names without the `TALLY_` prefix are the earlier systems' own, so that their deployments start
 * Tally unchanged (README.md, "Compatibility with the earlier systems"); the ones that only
 * stand for another setting are turned into it in src/compat/env.ts.
 */
const Port = Type.Integer({ minimum: 0, maximum: 65535 });

export const ConfigSchema = Type.Object({
  // HTTP / roles
  SERVER_PORT: Type.Optional(Port),
  TALLY_HOST: Type.String({
    default: '127.0.0.1',
    minLength: 1,
    description: 'Address the HTTP servers bind to',
  }),
  TALLY_QUERY_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8081 }),
  TALLY_GRPC_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 50051 }),
  METRICS_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 9090 }),
  TALLY_SERVICE_NAME: Type.Optional(Type.String({ minLength: 1, description: 'Name reported by /health' })),
  TALLY_LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),

  // PostgreSQL: DATABASE_URL, or the earlier systems' DB_* (src/compat/env.ts)
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DB_HOST: Type.Optional(Type.String({ minLength: 1 })),
  DB_PORT: Type.Optional(Port),
  DB_USER: Type.Optional(Type.String({ minLength: 1 })),
  DB_PASSWORD: Type.Optional(Type.String()),
  DB_NAME: Type.Optional(Type.String({ minLength: 1 })),
  TALLY_DATA_DIR: Type.String({ default: '.tally', minLength: 1 }),
  TALLY_DB_POOL_SIZE: Type.Integer({ minimum: 2, maximum: 200, default: 10 }),
  TALLY_READ_DATABASE_URL: Type.Optional(
    Type.String({
      pattern: '^postgres(ql)?://',
      description:
        '`tally query`: a streaming hot-standby replica of DATABASE_URL that answers the cache misses (src/query/replica-reads.ts)',
    }),
  ),
  TALLY_READ_MAX_LAG_MS: Type.Integer({
    minimum: 0,
    default: 5000,
    description: 'A replica further behind than this (replay lag) leaves the answer to the primary',
  }),

  // Storage policy
  TALLY_STORE_RAW: Type.Boolean({ default: true }),
  TALLY_RAW_RETENTION_DAYS: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 36500,
      description: 'Days of raw events kept (by event time); unset keeps them forever',
    }),
  ),

  // The user's rights (issue 22)
  TALLY_USER_HASH_KEY: Type.Optional(
    Type.String({
      minLength: 32,
      description:
        'Secret key of the hashes deleted users are remembered by (tombstones, the audit): HMAC-SHA256 of the user id. Every process of a database must use the same one; a process with another is refused. Unset: a random key generated on the first start and stored in the database (tally.user_hash_key)',
    }),
  ),

  // Ingest limits and event validation
  TALLY_MAX_BODY_BYTES: Type.Integer({ minimum: 1024, default: 1048576 }),
  TALLY_MAX_DECOMPRESSED_BYTES: Type.Integer({ minimum: 1024, default: 10485760 }),
  TALLY_MAX_EVENTS_PER_REQUEST: Type.Integer({ minimum: 1, maximum: 100000, default: 10000 }),
  TALLY_MAX_FUTURE_SKEW_SEC: Type.Integer({ minimum: 0, default: 300 }),
  TALLY_BATCH_LINGER_MS: Type.Number({
    minimum: 0,
    maximum: 60000,
    // 0: under load batches still grow, from what arrives while the previous write is in flight,
    // and no write waits for a timer (figures: docs/benchmarks.md).
    default: 0,
    description:
      'With no write in flight, how long a new batch waits for more events (embedded ingest, the Kafka producer of tally ingest, the processor; the processor never waits longer than FLUSH_INTERVAL_SEC). 0: at once; what arrives during a write still becomes the next batch',
  }),
  TALLY_MAX_INFLIGHT_BATCHES: Type.Integer({
    minimum: 1,
    maximum: 16,
    default: 1,
    description:
      'Embedded ingest: most micro-batch transactions committing at once (each holds a PostgreSQL connection)',
  }),

  // Kafka (the earlier systems' names first)
  KAFKA_BROKERS: Type.Optional(Type.String({ minLength: 1 })),
  KAFKA_BROKER: Type.Optional(
    Type.String({ minLength: 1, description: "An earlier system's spelling of KAFKA_BROKERS" }),
  ),
  KAFKA_TOPIC: Type.String({ default: 'incoming.user_activity', minLength: 1 }),
  KAFKA_GROUP_ID: Type.String({ default: 'user-activity-consumer-group', minLength: 1 }),
  TALLY_EXTRA_TOPICS: Type.String({ default: '' }),
  TALLY_KAFKA_PARTITIONS: Type.Integer({ minimum: 1, maximum: 10000, default: 6 }),
  TALLY_KAFKA_REPLICATION_FACTOR: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 32,
      description:
        "Copies of each partition of the topics Tally creates (and their .dlq); absent: the broker's default.replication.factor",
    }),
  ),
  TALLY_KAFKA_MIN_INSYNC_REPLICAS: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 32,
      description:
        "min.insync.replicas of the topics Tally creates: copies that must hold an event before it is acknowledged; absent: the broker's setting",
    }),
  ),
  KAFKA_PORT: Type.Integer({
    minimum: 1,
    maximum: 65535,
    default: 9092,
    description: 'Client port of the broker `npm run kafka` starts',
  }),
  TALLY_KAFKA_ACK_TIMEOUT_MS: Type.Integer({
    minimum: 500,
    maximum: 60000,
    default: 5000,
    description: 'tally ingest: longest wait for Kafka to acknowledge before answering 503',
  }),
  TALLY_INGEST_MAX_INFLIGHT_BYTES: Type.Integer({
    minimum: 65536,
    default: 67108864,
    description: 'tally ingest: encoded bytes waiting on Kafka beyond which requests get 503 at once',
  }),
  TALLY_INGEST_WORKERS: Type.Integer({
    minimum: 1,
    maximum: 64,
    default: 1,
    description: 'tally ingest: server processes sharing SERVER_PORT (node:cluster)',
  }),
  NUM_WORKERS: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
  BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 100000, default: 5000 }),
  FLUSH_INTERVAL_SEC: Type.Number({ exclusiveMinimum: 0, maximum: 3600, default: 0.5 }),
  TALLY_STALL_TIMEOUT_SEC: Type.Integer({
    minimum: 1,
    maximum: 86400,
    default: 60,
    description:
      'A processor whose partitions have lag and that has committed nothing for this long logs a warning, sets tally_processor_stalled and fails /ready',
  }),
  TALLY_KAFKA_SESSION_TIMEOUT_MS: Type.Integer({
    minimum: 1000,
    maximum: 300000,
    default: 10000,
    description: 'Consumer group session timeout: a processor silent this long loses its partitions',
  }),
  TALLY_MAX_MESSAGE_BYTES: Type.Integer({
    minimum: 1024,
    default: 1048576,
    description: 'Consumed Kafka values larger than this go to the dead-letter topic (too_large)',
  }),

  // Redis: REDIS_URL, or the earlier systems' REDIS_ADDR or REDIS_HOST/REDIS_PORT (src/compat/env.ts)
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  REDIS_ADDR: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_HOST: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_PORT: Type.Optional(Port),
  TALLY_CACHE_TTL_SEC: Type.Integer({ minimum: 1, default: 300 }),
  TALLY_CACHE_MAX_ENTRIES: Type.Integer({ minimum: 1, default: 10000 }),
  TALLY_READ_MODEL: Type.Union([Type.Literal('columnar'), Type.Literal('off')], {
    default: 'columnar',
    description:
      'columnar: each query process keeps an in-memory columnar copy of the raw events and visits (about 45 bytes per event) and answers filtered questions, breakdowns and visits from it; off: every such question scans PostgreSQL',
  }),

  TALLY_PRODUCT_MAX_SCAN_EVENTS: Type.Integer({
    minimum: 1,
    default: 2_000_000,
    description:
      'Most raw events a funnel, retention or paths question may read from PostgreSQL while the read model cannot answer it (off, or loading); beyond: TALLY_QUERY_TOO_EXPENSIVE, before anything is read',
  }),

  // Browser tracker / abuse limits
  TALLY_CORS_ORIGINS: Type.String({ default: '*' }),
  TALLY_HONOR_DNT: Type.Boolean({ default: false }),
  TALLY_TRUSTED_PROXIES: Type.String({
    default: '',
    description:
      'Comma-separated IP addresses and CIDR ranges of the proxies in front of ingest: only a request whose socket peer is one of them has its X-Forwarded-For believed (the right-most entry that is not a trusted proxy is the client). Empty: never',
  }),
  TALLY_GEOIP_DATABASE: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'Path of the MaxMind (.mmdb) country database the ingest looks client addresses up in; unset: the packaged GeoLite2 copy (@ip-location-db/geolite2-country-mmdb); `off`: no lookups',
    }),
  ),

  // Web analytics
  TALLY_SESSION_TIMEOUT_MIN: Type.Integer({
    minimum: 1,
    maximum: 1440,
    default: 30,
    description: "A gap longer than this (minutes) between one user's events starts a new visit",
  }),
  TALLY_RATE_LIMIT: Type.Integer({
    minimum: 1,
    default: 1000,
    description: 'Requests per second per API key',
  }),
  TALLY_REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 30000 }),
  TALLY_ALLOW_UNAUTHENTICATED: Type.Boolean({
    default: false,
    description: 'Serve the open API (no API keys yet) on a non-loopback TALLY_HOST anyway',
  }),
});

export type RawConfig = Static<typeof ConfigSchema>;
