import type { AddressInfo } from 'node:net';
import { serve as serveNode } from '@hono/node-server';
import { type ApiApp, createApp } from './app.js';
import type { ApiOptions } from './options.js';

/**
 * Options of `serve`: the app's options plus where to listen.
 *
 * @example
 * const options: ServeOptions = { models: model, hostname: '0.0.0.0', port: 3000, apiKey: 'sk-local-123' };
 * const server = await serve(options);
 */
export interface ServeOptions extends ApiOptions {
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default `127.0.0.1` (this machine only); `0.0.0.0` listens on every interface. */
  hostname?: string;
}

/**
 * A running server.
 *
 * @example
 * const server: RunningServer = await serve({ models: model, port: 0 });
 * process.once('SIGTERM', () => void server.close({ grace: 10_000 }));
 */
export interface RunningServer {
  app: ApiApp;
  /** e.g. `http://127.0.0.1:8080` */
  url: string;
  port: number;
  /**
   * Stops accepting connections and resolves when the server is closed. Requests in flight get up to
   * `grace` milliseconds to finish (default 0); meanwhile new API requests on open connections are
   * answered 503 `server_shutting_down`. Those still running then end with that error (a 503, or an
   * error event that closes the stream), and open connections are closed. Resolves with what was so
   * ended: the generations still running and the requests still queued when the grace was over.
   */
  close(options?: { grace?: number }): Promise<ClosedServer>;
}

/**
 * What `RunningServer#close` ended unfinished: generations (batch rows, `n` of them for a request
 * with `n` choices) still running when the grace was over, and requests still waiting for a slot.
 *
 * @example
 * const { running, queued }: ClosedServer = await server.close({ grace: 10_000 });
 * if (running + queued > 0) console.warn(`${running} generations and ${queued} queued requests were cut`);
 */
export interface ClosedServer {
  running: number;
  queued: number;
}

/**
 * Keep-alive sockets idle this long are closed (Node's default is 5 s). A request that arrives while
 * a long onnxruntime run blocks the thread is read only after it: with the default, the socket's
 * timer could fire first and reset a pooled client's connection.
 */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/**
 * Starts the API on Node's HTTP server.
 *
 * @example
 * import { loadModel } from '@implicit-it/runtime';
 * import { serve } from '@implicit-it/api';
 *
 * const model = await loadModel('./SmolLM2-135M');
 * const server = await serve({ models: [{ id: 'smollm2', model }], port: 8080 });
 * console.log(server.url); // http://127.0.0.1:8080
 */
export function serve(options: ServeOptions): Promise<RunningServer> {
  const { port = 8080, hostname = '127.0.0.1', ...appOptions } = options;
  const app = createApp(appOptions);
  return new Promise((resolve, reject) => {
    const server = serveNode({ fetch: app.fetch, port, hostname }, (info: AddressInfo) => {
      const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
      resolve({
        app,
        url: `http://${host}:${info.port}`,
        port: info.port,
        async close({ grace = 0 } = {}) {
          // new requests on open connections get 503 (the app's), as new connections are refused
          app.drain();
          const closed = new Promise<void>((done) => server.close(() => done()));
          const http = server as { closeIdleConnections?: () => void; closeAllConnections?: () => void };
          http.closeIdleConnections?.();
          const idle = () => app.state.active + app.state.queued === 0;
          const wait = async (ms: number) => {
            const until = performance.now() + ms;
            while (performance.now() < until && !idle()) await new Promise((r) => setTimeout(r, 50));
          };
          await wait(grace);
          const cut = { running: app.state.active, queued: app.state.queued };
          // the rest end now, told so: a 503, or an error event closing the stream
          app.shutdown();
          await wait(2000);
          http.closeAllConnections?.();
          await closed;
          return cut;
        },
      });
    });
    const http = server as { keepAliveTimeout?: number; headersTimeout?: number };
    http.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    http.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1000;
    server.once('error', reject);
  });
}
