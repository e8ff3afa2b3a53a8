import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_PATH } from '../../src/query/grpc/service-definition.ts';

const require = createRequire(import.meta.url);

type Unary = (request: Record<string, unknown>) => Promise<Record<string, unknown>>;

export interface AnalyticsClient {
  call(method: string, request: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** grpc.health.v1.Health/Check for `service` ('' = the server). */
  health(service: string): Promise<string>;
  /** The services server reflection (v1) lists. */
  listServices(): Promise<string[]>;
  close(): void;
}

const LOAD_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true };

/** A real @grpc/grpc-js client of tally.v1.AnalyticsService, the health service and reflection. */
export function analyticsClient(port: number): AnalyticsClient {
  const address = `127.0.0.1:${port}`;
  const credentials = grpc.credentials.createInsecure();
  const tally = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO_PATH, LOAD_OPTIONS)) as unknown as {
    tally: { v1: { AnalyticsService: grpc.ServiceClientConstructor } };
  };
  const client = new tally.tally.v1.AnalyticsService(address, credentials);

  const healthPath = require.resolve('grpc-health-check/proto/health/v1/health.proto');
  const healthPkg = grpc.loadPackageDefinition(protoLoader.loadSync(healthPath, LOAD_OPTIONS)) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const health = new healthPkg.grpc.health.v1.Health(address, credentials);

  const reflectionPath = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
  const reflectionPkg = grpc.loadPackageDefinition(
    protoLoader.loadSync(reflectionPath, LOAD_OPTIONS),
  ) as unknown as { grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } } };
  const reflection = new reflectionPkg.grpc.reflection.v1.ServerReflection(address, credentials);

  const unary = (target: grpc.Client, method: string): Unary => {
    const fn = (target as unknown as Record<string, unknown>)[method] as (
      req: unknown,
      cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
    ) => void;
    return (request) =>
      new Promise((resolve, reject) =>
        fn.call(target, request, (err, res) => (err ? reject(err) : resolve(res))),
      );
  };

  return {
    call: (method, request) => unary(client, method)(request),
    async health(service) {
      const res = await unary(health, 'Check')({ service });
      return res.status as string;
    },
    listServices() {
      return new Promise((resolve, reject) => {
        const stream = (
          reflection as unknown as {
            ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, Record<string, unknown>>;
          }
        ).ServerReflectionInfo();
        stream.on('data', (res: { list_services_response?: { service: { name: string }[] } }) => {
          resolve(res.list_services_response?.service.map((s) => s.name) ?? []);
          stream.end();
        });
        stream.on('error', reject);
        stream.write({ list_services: '' });
      });
    },
    close() {
      client.close();
      health.close();
      reflection.close();
    },
  };
}
