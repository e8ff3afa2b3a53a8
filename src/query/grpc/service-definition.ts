import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_PATH = fileURLToPath(new URL('../../../proto/tally/v1/analytics.proto', import.meta.url));
export const SERVICE_NAME = 'tally.v1.AnalyticsService';

/**
 * Loads proto/tally/v1/analytics.proto. `keepCase` keeps the snake_case field names, so gRPC
 * messages and REST JSON use the same names; int64 counts travel as JS numbers.
 */
export function loadAnalyticsProto(extraProtos: string[] = []): protoLoader.PackageDefinition {
  return protoLoader.loadSync([PROTO_PATH, ...extraProtos], {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
}
