import { createRequire } from 'node:module';
import maxmind, { type Reader, type Response } from 'maxmind';
import { TallyError } from '../errors/tally-error.ts';
import { isPublicAddress } from './client-address.ts';

/** Looks up the country of a client address; the address itself is kept nowhere. */
export interface CountryLookup {
  /** The ISO 3166-1 alpha-2 code (upper case) of a public address; null when unknown or not public. */
  country(address: string): string | null;
}

/**
 * The GeoLite2 country database that ships in `@ip-location-db/geolite2-country-mmdb` (IPv4 and
 * IPv6 in one file). A newer copy, or MaxMind's own GeoLite2-Country.mmdb, can be named with
 * TALLY_GEOIP_DATABASE.
 */
export function packagedDatabasePath(): string {
  return createRequire(import.meta.url).resolve(
    '@ip-location-db/geolite2-country-mmdb/geolite2-country.mmdb',
  );
}

/**
 * Opens the country database once, at start (maxmind reads the whole file, ~9 MB, into memory):
 * `setting` is TALLY_GEOIP_DATABASE: unset for the packaged database, a path for another, `off`
 * for none (undefined: every event without a `country` stays without one). A file that cannot be
 * read as a MaxMind database fails the start, naming the variable.
 */
export async function openCountryLookup(setting: string | undefined): Promise<CountryLookup | undefined> {
  if (setting === 'off') return undefined;
  const path = setting ?? packagedDatabasePath();
  let reader: Reader<Response>;
  try {
    // No watchForUpdates: a replaced file takes effect at the next start, like every setting.
    reader = await maxmind.open<Response>(path);
  } catch (err) {
    throw new TallyError(
      'TALLY_CONFIG_INVALID',
      `TALLY_GEOIP_DATABASE: cannot open ${JSON.stringify(path)} as a MaxMind (.mmdb) database: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return {
    country(address) {
      if (!isPublicAddress(address)) return null;
      return countryCode(reader.get(address));
    },
  };
}

const CODE = /^[A-Z]{2}$/;

/**
 * The country of a record: `country_code` in ip-location-db's databases, `country.iso_code` in
 * MaxMind's own; null for anything else, so a database of another shape yields no country
 * rather than a wrong one.
 */
function countryCode(record: unknown): string | null {
  if (record === null || typeof record !== 'object') return null;
  const r = record as { country_code?: unknown; country?: { iso_code?: unknown } };
  const code = r.country_code ?? r.country?.iso_code;
  return typeof code === 'string' && CODE.test(code) ? code : null;
}
