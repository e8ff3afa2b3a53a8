import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { LiveFeed } from './live-feed.ts';
import type { PipelineStatus } from './pipeline-status.ts';
import { acceptsGzip, isFresh, loadAsset, type Asset } from './static-assets.ts';
import { LiveStreams } from './stream.ts';

export interface DashboardRoutesDeps {
  live: LiveFeed;
  pipeline: Pick<PipelineStatus, 'status'>;
  /** Which project a request reads (auth decides; `default` without keys). */
  projectOf: (request: FastifyRequest) => string;
  /** Baked into /tally.js: the script then sends nothing from browsers asking not to be tracked. */
  honorDnt: boolean;
  streamIntervalMs?: number;
  /** For a process that commits no batches itself: `(project) => rollupWatcher.watch(project)`. */
  watch?: (project: string) => () => void;
}

// TRICKY: no inline script or style anywhere in the dashboard, so the policy can forbid both.
const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

const HTML_HEADERS = {
  ...SECURITY_HEADERS,
  'content-security-policy': DASHBOARD_CSP,
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

const DNT_MARKER = '/*HONOR_DNT*/ false';
const YEAR_SEC = 31_536_000;

/**
 * The live dashboard (`GET /` and its assets under /dashboard/), its feeds (`GET /v1/stream`,
 * `GET /v1/pipeline`) and the browser tracker (`GET /tally.js`). Mounted by `tally start` and
 * by the query role; the dashboard itself only reads the public REST API.
 */
export function dashboardRoutes(deps: DashboardRoutesDeps) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    const css = loadAsset('dashboard.css');
    const js = loadAsset('dashboard.js');
    // The modules dashboard.js imports: unversioned URLs, so they are revalidated (no-cache).
    const modules = [
      'chart.js',
      'filters.js',
      'format.js',
      'funnel.js',
      'panels.js',
      'product.js',
      'product-view.js',
      'retention.js',
    ];
    const files = new Map([
      ['dashboard.css', css],
      ['dashboard.js', js],
      ...modules.map((name) => [name, loadAsset(name)] as const),
    ]);
    // Asset URLs carry their content hash, so they can be cached forever and still change on upgrade.
    const index = loadAsset('index.html', (html) =>
      html
        .replaceAll('{{css}}', `/dashboard/dashboard.css?v=${css.version}`)
        .replaceAll('{{js}}', `/dashboard/dashboard.js?v=${js.version}`),
    );
    const tracker = loadAsset('tally.js', (src) => {
      if (!src.includes(DNT_MARKER)) throw new Error(`tally.js lost its ${DNT_MARKER} marker`);
      return src.replace(DNT_MARKER, deps.honorDnt ? 'true' : 'false');
    });
    const streams = new LiveStreams({
      live: deps.live,
      intervalMs: deps.streamIntervalMs,
      headers: SECURITY_HEADERS,
      watch: deps.watch,
    });
    app.addHook('preClose', (done) => {
      streams.closeAll();
      done();
    });

    const hide = { hide: true };
    app.get('/', { schema: { ...hide, summary: 'The live dashboard' } }, (request, reply) =>
      sendAsset(request, reply, index, { ...HTML_HEADERS, 'cache-control': 'no-cache' }),
    );
    app.get<{ Params: { name: string }; Querystring: { v?: string } }>(
      '/dashboard/:name',
      { schema: hide },
      (request, reply) => {
        const asset = files.get(request.params.name);
        if (asset === undefined) return reply.callNotFound();
        const immutable = request.query.v === asset.version;
        return sendAsset(request, reply, asset, {
          ...SECURITY_HEADERS,
          'cache-control': immutable ? `public, max-age=${YEAR_SEC}, immutable` : 'no-cache',
        });
      },
    );
    app.get(
      '/tally.js',
      { schema: { tags: ['ingest'], summary: 'The browser tracker script' } },
      (request, reply) =>
        sendAsset(request, reply, tracker, {
          ...SECURITY_HEADERS,
          // Sites embed it from another origin; an hour keeps upgrades reasonably quick.
          'cache-control': 'public, max-age=3600',
          'cross-origin-resource-policy': 'cross-origin',
        }),
    );
    app.get(
      '/v1/stream',
      {
        // A HEAD request would otherwise open a stream that never sends a body.
        exposeHeadRoute: false,
        schema: {
          tags: ['query'],
          summary:
            'Server-Sent Events: a JSON snapshot {now, rate, window_sec, committed, commits, last_commit} every second',
          produces: ['text/event-stream'],
        },
      },
      (request, reply) => streams.open(request, reply, deps.projectOf(request)),
    );
    app.get(
      '/v1/pipeline',
      {
        schema: {
          tags: ['query'],
          summary: 'Pipeline health: consumer lag, dead letters, last commit time',
        },
      },
      async (request, reply) => {
        const project = deps.projectOf(request);
        const status = await deps.pipeline.status(project);
        return reply
          .header('cache-control', 'no-store')
          .send({ ...status, live: deps.live.snapshot(project) });
      },
    );
  };
}

function sendAsset(
  request: FastifyRequest,
  reply: FastifyReply,
  asset: Asset,
  headers: Record<string, string>,
): FastifyReply {
  reply.headers({ ...headers, etag: asset.etag, vary: 'accept-encoding' });
  if (isFresh(request.headers['if-none-match'], asset)) return reply.code(304).send();
  reply.type(asset.contentType);
  if (acceptsGzip(request.headers['accept-encoding'])) {
    return reply.header('content-encoding', 'gzip').send(asset.gzipped);
  }
  return reply.send(asset.body);
}
