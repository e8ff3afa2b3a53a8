import type { Metadata } from '@grpc/grpc-js';
import { TallyError } from '../errors/tally-error.ts';
import { authorize } from './authorize.ts';
import type { KeySet } from './key-set.ts';

function metadataKey(metadata: Metadata): string | undefined {
  const [authorization] = metadata.get('authorization');
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match) return match[1];
  }
  const [apiKey] = metadata.get('x-api-key');
  return typeof apiKey === 'string' && apiKey !== '' ? apiKey : undefined;
}

/**
 * For the gRPC AnalyticsService (read-only): the project of the read key in the call's
 * `authorization: Bearer <key>` or `x-api-key` metadata, `default` while no key exists.
 * Throws TallyError TALLY_UNAUTHORIZED / TALLY_FORBIDDEN, which the gRPC layer maps to
 * UNAUTHENTICATED / PERMISSION_DENIED.
 */
export function grpcProjectOf(keys: KeySet): (metadata: Metadata) => string {
  return (metadata) => {
    const result = authorize(keys, metadataKey(metadata), 'read');
    if (!result.ok) throw new TallyError(result.code, result.message);
    return result.project;
  };
}
