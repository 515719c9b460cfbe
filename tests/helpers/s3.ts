// A real S3-compatible server for tests: s3rver (npm) in a child process, so that tests may block
// on `haulSync` without starving it, and a TCP proxy that cuts connections carrying large bodies,
// to drop an upload mid-way.
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { projectRoot } from './cli.js';

/** s3rver's built-in account. */
export const s3Credentials = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };

export interface S3Server {
  port: number;
  endpoint: string;
  stop(): Promise<void>;
}

const serverScript = `
const S3rver = require('s3rver');
const [directory, buckets] = process.argv.slice(1);
new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: JSON.parse(buckets).map((name) => ({ name })) })
  .run()
  .then((a) => process.stdout.write(a.port + '\\n'), (e) => { console.error(e); process.exit(1); });
`;

export async function startS3Server(directory: string, buckets: string[]): Promise<S3Server> {
  const child: ChildProcess = spawn(process.execPath, ['-e', serverScript, directory, JSON.stringify(buckets)], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.on('exit', (code) => reject(new Error(`s3rver exited with ${code} before listening`)));
  });
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export interface CuttingProxy {
  port: number;
  endpoint: string;
  /** From now on, reset every connection once it has carried more than `bytes` upstream; undefined stops cutting. */
  cutAfter(bytes: number | undefined): void;
  /** Connections cut so far. */
  readonly cuts: number;
  stop(): Promise<void>;
}

export async function startCuttingProxy(targetPort: number): Promise<CuttingProxy> {
  let limit: number | undefined;
  let cuts = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let carried = 0;
    client.on('data', (d: Buffer) => {
      carried += d.length;
      if (limit !== undefined && carried > limit) {
        cuts++;
        client.resetAndDestroy();
        upstream.resetAndDestroy();
        return;
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => client.write(d));
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    cutAfter: (bytes) => {
      limit = bytes;
    },
    get cuts() {
      return cuts;
    },
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
