import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';

/**
 * Sends @grpc/grpc-js's own log lines (it writes errors such as "No address added" straight to
 * stderr) to Tally's logger, so stderr carries only Tally's one-line start-up errors and every
 * log line is JSON like the rest.
 */
export function routeGrpcLogs(logger: Logger): void {
  const grpcLogger = logger.child({ component: 'grpc-js' });
  const line = (args: unknown[]) => args.map(String).join(' ');
  grpc.setLogger({
    error: (...args: unknown[]) => grpcLogger.warn(line(args)),
    info: (...args: unknown[]) => grpcLogger.info(line(args)),
    debug: (...args: unknown[]) => grpcLogger.debug(line(args)),
  });
}
