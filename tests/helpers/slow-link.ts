// A TCP relay to a local port that carries at most `bytesPerSecond` towards the caller: backups
// through it take long enough for a test to stop, kill or signal a daemon in the middle.
import * as net from 'node:net';
import { freePort } from './sshd.js';

/** A slow link to sshd: the daemon's backups take long enough to be caught mid-way. */
export async function slowLink(target: number, bytesPerSecond: number): Promise<{ port: number; close(): void }> {
  const port = await freePort();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target, '127.0.0.1');
    let carried = 0;
    const started = Date.now();
    outbound.on('data', (d: Buffer) => {
      carried += d.length;
      const ahead = (carried / bytesPerSecond) * 1000 - (Date.now() - started);
      if (ahead > 0) {
        outbound.pause();
        setTimeout(() => outbound.resume(), ahead);
      }
    });
    inbound.pipe(outbound).pipe(inbound);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

