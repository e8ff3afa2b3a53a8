import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TallyError } from '../errors/tally-error.ts';
import type { LiveFeed } from './live-feed.ts';

export interface LiveStreamsDeps {
  live: LiveFeed;
  /** How often every open stream gets a snapshot. */
  intervalMs?: number;
  /** How often a keep-alive comment is written (proxies drop idle connections). */
  keepAliveMs?: number;
  maxStreams?: number;
  /**
   * Called when a stream opens, returning what to call when it closes: lets a process that
   * does not commit batches itself start feeding `live` (see RollupWatcher).
   */
  watch?: (project: string) => () => void;
  /** Headers added to every stream response (security headers). */
  headers?: Record<string, string>;
}

interface Stream {
  res: ServerResponse;
  project: string;
  unwatch: () => void;
}

/**
 * The open `GET /v1/stream` connections. One timer serves them all: each tick writes one
 * snapshot per stream, so an idle dashboard costs a few bytes a second and no queries.
 */
export class LiveStreams {
  readonly #deps: Required<Omit<LiveStreamsDeps, 'watch'>> & Pick<LiveStreamsDeps, 'watch'>;
  readonly #streams = new Set<Stream>();
  #tick: NodeJS.Timeout | undefined;
  #keepAlive: NodeJS.Timeout | undefined;

  constructor(deps: LiveStreamsDeps) {
    this.#deps = {
      live: deps.live,
      intervalMs: deps.intervalMs ?? 1000,
      keepAliveMs: deps.keepAliveMs ?? 15_000,
      maxStreams: deps.maxStreams ?? 1000,
      headers: deps.headers ?? {},
      watch: deps.watch,
    };
  }

  get size(): number {
    return this.#streams.size;
  }

  /** Takes over the reply and keeps it open as a Server-Sent Events stream until the client leaves. */
  open(request: FastifyRequest, reply: FastifyReply, project: string): void {
    if (this.#streams.size >= this.#deps.maxStreams)
      throw new TallyError('TALLY_UNAVAILABLE', 'too many live streams open; retry later');
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...this.#deps.headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Tells nginx-style proxies not to buffer the stream.
      'x-accel-buffering': 'no',
    });
    // `retry` sets how soon an EventSource reconnects after the connection drops (e.g. a restart).
    res.write(`retry: 1000\n\n`);
    const stream = { res, project, unwatch: this.#deps.watch?.(project) ?? (() => {}) };
    this.#streams.add(stream);
    this.#send(stream);
    request.raw.socket.setNoDelay(true);
    res.on('close', () => this.#remove(stream));
    // A client gone mid-write surfaces here; the stream is dropped, nothing else to do.
    res.on('error', () => this.#remove(stream));
    this.#startTimers();
  }

  /** Ends every stream (before the server closes, so that close does not wait for them). */
  closeAll(): void {
    for (const s of this.#streams) {
      s.unwatch();
      s.res.end();
    }
    this.#streams.clear();
    this.#stopTimers();
  }

  #send(s: Stream): void {
    if (s.res.writableEnded || s.res.destroyed) return;
    s.res.write(`data: ${JSON.stringify(this.#deps.live.snapshot(s.project))}\n\n`);
  }

  #remove(s: Stream): void {
    if (!this.#streams.delete(s)) return;
    s.unwatch();
    if (this.#streams.size === 0) this.#stopTimers();
  }

  #startTimers(): void {
    this.#tick ??= setInterval(() => {
      for (const s of this.#streams) this.#send(s);
    }, this.#deps.intervalMs);
    this.#keepAlive ??= setInterval(() => {
      for (const s of this.#streams) if (!s.res.destroyed) s.res.write(': keep-alive\n\n');
    }, this.#deps.keepAliveMs);
  }

  #stopTimers(): void {
    clearInterval(this.#tick);
    clearInterval(this.#keepAlive);
    this.#tick = undefined;
    this.#keepAlive = undefined;
  }
}
