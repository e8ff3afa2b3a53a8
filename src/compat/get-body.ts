import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import sjson from 'secure-json-parse';
import { TallyError } from '../errors/tally-error.ts';

const MAX_GET_BODY_BYTES = 64 * 1024;

/**
 * The JSON object sent as the body of a GET, as an earlier system's gateway asks its questions
 * (`curl -X GET -H 'Content-Type: application/json' -d '{...}'`). Fastify parses no body on GET,
 * so the route reads the stream itself; no body gives `{}`.
 */
export async function readGetBody(
  raw: IncomingMessage,
  headers: IncomingHttpHeaders,
): Promise<Record<string, unknown>> {
  const declared = Number(headers['content-length'] ?? 0);
  if (declared === 0 && headers['transfer-encoding'] === undefined) return {};
  if (declared > MAX_GET_BODY_BYTES) throw tooLarge();
  const type = (headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    throw new TallyError('TALLY_UNSUPPORTED_MEDIA_TYPE', 'a GET body must be application/json');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_GET_BODY_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = sjson.parse(text);
  } catch (err) {
    throw new TallyError('TALLY_INVALID_JSON', 'the body is not valid JSON', { cause: err });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new TallyError('TALLY_INVALID_JSON', 'the body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

function tooLarge(): TallyError {
  return new TallyError('TALLY_BODY_TOO_LARGE', `a GET body may be at most ${MAX_GET_BODY_BYTES} bytes`);
}
