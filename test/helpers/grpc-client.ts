import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_PATH } from '../../src/query/grpc/service-definition.ts';

const require = createRequire(import.meta.url);

type Unary = (request: Record<string, unknown>) => Promise<Record<string, unknown>>;

export interface AnalyticsClient {
  call(method: string, request: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** A call with request metadata; the response and the trailer's text values. */
  callWith(
    method: string,
    request: Record<string, unknown>,
    metadata: Record<string, string>,
  ): Promise<{ response: Record<string, unknown>; trailer: Record<string, string> }>;
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
    callWith(method, request, metadata) {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(metadata)) md.set(k, v);
      const fn = (client as unknown as Record<string, unknown>)[method] as (
        req: unknown,
        md: grpc.Metadata,
        cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
      ) => grpc.ClientUnaryCall;
      let call: grpc.ClientUnaryCall | undefined;
      const response = new Promise<Record<string, unknown>>((resolve, reject) => {
        call = fn.call(client, request, md, (err, res) => (err ? reject(err) : resolve(res)));
      });
      const trailer = new Promise<Record<string, string>>((resolve) =>
        call?.on('status', (status: grpc.StatusObject) => {
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(status.metadata.getMap())) out[k] = String(v);
          resolve(out);
        }),
      );
      return Promise.all([response, trailer]).then(([r, t]) => ({ response: r, trailer: t }));
    },
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
