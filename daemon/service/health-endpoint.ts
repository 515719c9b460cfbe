// The daemon's small HTTP endpoint, for monitoring only: GET /healthz (is it up, can it reach its
// database) and GET /metrics (Prometheus text). It listens on 127.0.0.1 by default and offers
// nothing that changes state; commands go over the bus.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HaulError } from '../../shared/errors.js';
import type { Registry } from 'prom-client';

export interface HealthReport {
  status: 'ok' | 'unhealthy' | 'stopping';
  [key: string]: unknown;
}

export interface HealthEndpoint {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthEndpoint(options: { host: string; port: number; health: () => Promise<HealthReport>; metrics: Registry }): Promise<HealthEndpoint> {
  const server = http.createServer((req, res) => {
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'only GET\n');
    if (url === '/healthz') {
      void options.health().then((report) => send(report.status === 'ok' ? 200 : 503, 'application/json', JSON.stringify(report) + '\n'));
      return;
    }
    if (url === '/metrics') {
      void options.metrics.metrics().then(
        (text) => send(200, options.metrics.contentType, text),
        (err: unknown) => send(500, 'text/plain; charset=utf-8', `metrics failed: ${(err as Error).message}\n`),
      );
      return;
    }
    send(404, 'text/plain; charset=utf-8', 'not found: the daemon serves /healthz and /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new HaulError('ListenFailed', `the daemon cannot listen on ${options.host}:${options.port} for /healthz and /metrics: ${err.code === 'EADDRINUSE' ? 'the port is in use (another daemon?)' : err.message}. Choose another port (--http-port, HAUL_HTTP_PORT) or turn it off with "off".`));
    });
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    host: address.address,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
