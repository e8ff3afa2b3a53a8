import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { Logger } from 'pino';
import type { QueryService } from '../query-service.ts';
import { analyticsHandlers } from './handlers.ts';
import { loadAnalyticsProto, SERVICE_NAME } from './service-definition.ts';

export interface GrpcServerDeps {
  query: QueryService;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  projectOf: (metadata: grpc.Metadata) => string;
  logger: Logger;
}

export interface GrpcServer {
  /** The port actually bound. */
  port: number;
  /** Marks every service NOT_SERVING in grpc.health.v1 (on shutdown, before stop()). */
  drain(): void;
  stop(): Promise<void>;
}

const STOP_GRACE_MS = 5000;

/**
 * Serves tally.v1.AnalyticsService, the standard grpc.health.v1.Health service and server
 * reflection (v1 and v1alpha, so grpcurl and grpcui work without the .proto).
 */
export async function startGrpcServer(deps: GrpcServerDeps): Promise<GrpcServer> {
  const definition = loadAnalyticsProto();
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    tally: { v1: { AnalyticsService: grpc.ServiceClientConstructor } };
  };
  const server = new grpc.Server();
  server.addService(loaded.tally.v1.AnalyticsService.service, analyticsHandlers(deps));
  const health = new HealthImplementation({ '': 'SERVING', [SERVICE_NAME]: 'SERVING' });
  health.addToServer(server);
  // Reflection describes the health service too, so `grpcurl list` shows everything served.
  new ReflectionService(loadAnalyticsProto([healthProtoPath])).addToServer(server);

  const address = deps.host.includes(':') ? `[${deps.host}]:${deps.port}` : `${deps.host}:${deps.port}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  let stopped: Promise<void> | undefined;
  return {
    port,
    drain() {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(SERVICE_NAME, 'NOT_SERVING');
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), STOP_GRACE_MS);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return stopped;
    },
  };
}
