import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

/** One file served from memory, gzipped once at startup. */
export interface Asset {
  body: Buffer;
  gzipped: Buffer;
  contentType: string;
  /** Strong validator (quoted). */
  etag: string;
  /** Short content hash, used to version asset URLs. */
  version: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

const ASSETS_DIR = new URL('./assets/', import.meta.url);

/** Reads `name` from src/dashboard/assets, applying `transform` to its text first. */
export function loadAsset(name: string, transform: (text: string) => string = (t) => t): Asset {
  return makeAsset(name, transform(readFileSync(new URL(name, ASSETS_DIR), 'utf8')));
}

export function makeAsset(name: string, text: string): Asset {
  const body = Buffer.from(text, 'utf8');
  const version = createHash('sha256').update(body).digest('base64url').slice(0, 16);
  const ext = name.slice(name.lastIndexOf('.'));
  return {
    body,
    gzipped: gzipSync(body, { level: 9 }),
    contentType: TYPES[ext] ?? 'application/octet-stream',
    etag: `"${version}"`,
    version,
  };
}

/** True when the client's If-None-Match names this version (weak or strong, or `*`). */
export function isFresh(ifNoneMatch: string | undefined, asset: Asset): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch
    .split(',')
    .map((s) => s.trim().replace(/^W\//, ''))
    .some((tag) => tag === asset.etag || tag === '*');
}

export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (acceptEncoding === undefined) return false;
  return acceptEncoding.split(',').some((part) => {
    const [coding, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    if (coding !== 'gzip' && coding !== '*') return false;
    const q = params.find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}
