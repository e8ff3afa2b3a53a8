import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';
import sjson from 'secure-json-parse';
import { TallyError } from '../errors/tally-error.ts';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

export interface BodyLimits {
  maxDecompressedBytes: number;
  maxEvents: number;
}

/** One item of a request body: a parsed value, or the reason its text could not be parsed. */
export type BodyItem = { ok: true; value: unknown } | { ok: false; code: string; message: string };

export interface DecodedBody {
  items: BodyItem[];
  /** The body was one JSON object rather than an array or NDJSON. */
  single: boolean;
}

/** Undoes Content-Encoding (gzip, deflate, identity) under a decompressed-size cap. */
export async function decompress(
  body: Buffer,
  encoding: string | undefined,
  maxBytes: number,
): Promise<Buffer> {
  const enc = (encoding ?? 'identity').trim().toLowerCase();
  if (enc === 'identity' || enc === '') return body;
  if (enc !== 'gzip' && enc !== 'x-gzip' && enc !== 'deflate') {
    throw new TallyError(
      'TALLY_UNSUPPORTED_ENCODING',
      `Content-Encoding ${enc} is not supported (use gzip, deflate or identity)`,
    );
  }
  try {
    const fn = enc === 'deflate' ? inflateAsync : gunzipAsync;
    return await fn(body, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new TallyError('TALLY_BODY_TOO_LARGE', `decompressed body exceeds ${maxBytes} bytes`);
    }
    throw new TallyError('TALLY_INVALID_JSON', `body is not valid ${enc} data`, { cause: err });
  }
}

/**
 * Splits a request body into event items: one JSON object, a JSON array of them, or NDJSON
 * (one per line). In NDJSON a malformed line is an item error, so the other lines still count.
 */
export function parseEvents(text: string, ndjson: boolean, maxEvents: number): DecodedBody {
  if (ndjson) {
    const lines = text.split('\n').filter((l) => l.trim().length > 0);
    checkCount(lines.length, maxEvents);
    return { items: lines.map(parseItem), single: false };
  }
  const parsed = parseJson(text);
  if (Array.isArray(parsed)) {
    checkCount(parsed.length, maxEvents);
    return { items: parsed.map((value: unknown) => ({ ok: true, value })), single: false };
  }
  return { items: [{ ok: true, value: parsed }], single: true };
}

function parseItem(line: string): BodyItem {
  try {
    return {
      ok: true,
      value: sjson.parse(line, undefined, { protoAction: 'error', constructorAction: 'error' }),
    };
  } catch (err) {
    return {
      ok: false,
      code: 'TALLY_INVALID_JSON',
      message: `line is not valid JSON: ${(err as Error).message}`,
    };
  }
}

function parseJson(text: string): unknown {
  if (text.trim().length === 0) throw new TallyError('TALLY_INVALID_JSON', 'request body is empty');
  try {
    return sjson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    throw new TallyError('TALLY_INVALID_JSON', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

function checkCount(count: number, max: number): void {
  if (count === 0) throw new TallyError('TALLY_VALIDATION_FAILED', 'request body contains no events');
  if (count > max)
    throw new TallyError('TALLY_TOO_MANY_EVENTS', `at most ${max} events per request (got ${count})`);
}
