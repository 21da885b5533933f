import type { AddressInfo } from 'node:net';
import { serve as serveNode } from '@hono/node-server';
import { type ApiApp, createApp } from './app.js';
import type { ApiOptions } from './options.js';

/** Options of `serve`: the app's options plus where to listen. */
export interface ServeOptions extends ApiOptions {
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default `127.0.0.1` (this machine only); `0.0.0.0` listens on every interface. */
  hostname?: string;
}

/** A running server. */
export interface RunningServer {
  app: ApiApp;
  /** e.g. `http://127.0.0.1:8080` */
  url: string;
  port: number;
  /** Stops accepting connections, ends open ones, and resolves when the server is closed. */
  close(): Promise<void>;
}

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
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
    server.once('error', reject);
  });
}
