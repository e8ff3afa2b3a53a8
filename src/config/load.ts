import { Value } from '@sinclair/typebox/value';
import { ConfigSchema, type RawConfig } from './schema.ts';
import { TallyError } from '../errors/tally-error.ts';
import { databaseUrlFromDbVariables, kafkaBrokerList, redisUrlFromAddress } from '../compat/env.ts';
import { parseTrustedProxies } from '../ingest/client-address.ts';

export type DatabaseConfig =
  { kind: 'embedded'; dataDir: string } | { kind: 'external'; connectionString: string };

export interface Config {
  raw: RawConfig;
  host: string;
  /** Port of the all-in-one and ingest HTTP server. */
  serverPort: number;
  database: DatabaseConfig;
  kafka: { brokers: string[]; topic: string; groupId: string; extraTopics: string[] } | undefined;
  redisUrl: string | undefined;
}

const KNOWN = new Set(Object.keys(ConfigSchema.properties));

/** Parses and validates `env`; throws TALLY_CONFIG_INVALID naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (KNOWN.has(name)) {
      // An empty variable means "not set", as in most shells' `VAR= cmd`.
      if (value !== '') input[name] = value;
    } else if (name.startsWith('TALLY_') && !IGNORED_TALLY_VARS.has(name)) {
      problems.push(
        `${name}: unknown Tally variable (known: ${[...KNOWN].filter((k) => k.startsWith('TALLY_')).join(', ')})`,
      );
    }
  }
  const converted = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, input));
  for (const error of Value.Errors(ConfigSchema, converted)) {
    const name = error.path.replace(/^\//, '');
    const got = SECRETS.has(name) ? `${String(input[name]).length} characters` : JSON.stringify(input[name]);
    problems.push(`${name}: ${error.message} (got ${got})`);
  }
  const proxies = (converted as Partial<RawConfig>).TALLY_TRUSTED_PROXIES;
  if (typeof proxies === 'string') {
    try {
      parseTrustedProxies(proxies);
    } catch (err) {
      problems.push(`TALLY_TRUSTED_PROXIES: ${(err as Error).message}`);
    }
  }
  const { TALLY_KAFKA_REPLICATION_FACTOR: copies, TALLY_KAFKA_MIN_INSYNC_REPLICAS: minInsync } =
    converted as Partial<RawConfig>;
  if (typeof copies === 'number' && typeof minInsync === 'number' && minInsync > copies) {
    problems.push(
      `TALLY_KAFKA_MIN_INSYNC_REPLICAS: ${minInsync} is more than TALLY_KAFKA_REPLICATION_FACTOR (${copies}): no write could ever be acknowledged`,
    );
  }
  if (problems.length > 0) {
    throw new TallyError('TALLY_CONFIG_INVALID', `Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const raw = converted as RawConfig;
  return {
    raw,
    host: raw.TALLY_HOST,
    serverPort: raw.SERVER_PORT ?? 8080,
    database: databaseConfig(raw),
    kafka: kafkaConfig(raw),
    redisUrl: redisUrl(raw),
  };
}

/** Variables whose values an error message must not show: they end up in logs. */
const SECRETS = new Set(['TALLY_USER_HASH_KEY']);

/** Variables that share the prefix but are not configuration (test and CI switches). */
const IGNORED_TALLY_VARS = new Set([
  'TALLY_REQUIRE_ALL_SUITES',
  'TALLY_COMPAT_DATABASE_URL',
  'TALLY_LONG_TESTS',
]);

function databaseConfig(raw: RawConfig): DatabaseConfig {
  const connectionString = raw.DATABASE_URL || databaseUrlFromDbVariables(raw);
  if (connectionString === undefined) return { kind: 'embedded', dataDir: raw.TALLY_DATA_DIR };
  return { kind: 'external', connectionString };
}

function kafkaConfig(raw: RawConfig): Config['kafka'] {
  const list = kafkaBrokerList(raw);
  if (!list) return undefined;
  return {
    brokers: splitList(list),
    topic: raw.KAFKA_TOPIC,
    groupId: raw.KAFKA_GROUP_ID,
    extraTopics: splitList(raw.TALLY_EXTRA_TOPICS),
  };
}

function redisUrl(raw: RawConfig): string | undefined {
  return raw.REDIS_URL || redisUrlFromAddress(raw);
}

export function splitList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
