// The bus over TCP with CURVE: the daemon's key pair made on first start, clients admitted by
// their public key in bus/authorized-clients through the ZAP handler, everyone else refused.
// Real sockets on 127.0.0.1.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { addBusClient, authorizedClientsPath, serverKeyPath } from '../../../daemon/bus/curve-auth.js';
import { BusClient } from '../../../shared/bus/bus-client.js';
import { readCurveClientKeyFile, type CurveClientKeys } from '../../../shared/bus/curve-keys.js';
import { BUS_PROTOCOL_VERSION, jobTopic } from '../../../shared/bus/messages.js';
import { LEVEL, startTestBus, type TestBus } from '../../helpers/bus.js';
import { tempDir } from '../../helpers/cli.js';
import { failure } from '../../helpers/errors.js';
import { freePort } from '../../helpers/sshd.js';

async function tcpEndpoints() {
  return { commands: `tcp://127.0.0.1:${await freePort()}`, events: `tcp://127.0.0.1:${await freePort()}` };
}

describe('bus over TCP with CURVE', () => {
  const tmp = tempDir('bus-curve');
  let bus: TestBus;
  let tcp: { commands: string; events: string };
  let admitted: CurveClientKeys;
  beforeAll(async () => {
    tcp = await tcpEndpoints();
    bus = await startTestBus({ tcp }, tmp.dir);
    const keyFile = path.join(tmp.dir, 'web.key');
    addBusClient(tmp.dir, 'web', keyFile);
    admitted = readCurveClientKeyFile(keyFile);
  });
  afterAll(async () => {
    await bus?.server.stop();
    tmp.cleanup();
  });

  it('makes the server key pair on first start (0600 in a 0700 folder) and keeps it across restarts', async () => {
    const file = serverKeyPath(tmp.dir);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toMatch(/^# Haul bus server key: .*\npublic-key [!-~]{40}\nsecret-key [!-~]{40}\n$/);
    expect(text).toContain(`public-key ${bus.server.serverPublicKey}\n`);
    expect(admitted.serverPublicKey).toBe(bus.server.serverPublicKey);
    expect(bus.log.at(LEVEL.info)).toContain(`made the bus's CURVE key pair (public key ${bus.server.serverPublicKey})`);

    const again = await startTestBus({ tcp: await tcpEndpoints() }, tmp.dir).catch((e: Error) => e);
    // The ipc sockets of the running bus are in the same folder: a second daemon is refused.
    expect((again as Error).message).toMatch(/^another Haul daemon is running/);
    const other = tempDir('bus-curve-restart');
    try {
      const first = await startTestBus({ tcp: await tcpEndpoints() }, other.dir);
      const key = first.server.serverPublicKey;
      await first.server.stop();
      const second = await startTestBus({ tcp: await tcpEndpoints() }, other.dir);
      expect(second.server.serverPublicKey).toBe(key);
      expect(second.log.at(LEVEL.info).some((m) => m.startsWith("made the bus's CURVE key pair"))).toBe(false);
      await second.server.stop();
    } finally {
      other.cleanup();
    }
  });

  it('an admitted client runs commands and receives events over TCP', async () => {
    const client = await BusClient.connect({ endpoint: tcp.commands, curve: admitted });
    try {
      const status = await client.request('status', {});
      expect(status.events.tcp).toBe(tcp.events);
      const sub = await client.subscribe({ topics: [jobTopic(77)] });
      bus.server.publish({ v: BUS_PROTOCOL_VERSION, type: 'job-log', at: new Date().toISOString(), jobId: 77, level: 'INFO', line: '2026-11-23T10:00:00.000Z INFO  over tcp' });
      for await (const event of sub) {
        expect(event).toMatchObject({ type: 'job-log', jobId: 77, line: '2026-11-23T10:00:00.000Z INFO  over tcp' });
        break;
      }
      expect(bus.log.at(LEVEL.info)).toContain('bus client web connected from 127.0.0.1');
    } finally {
      client.close();
    }
  });

  it('a client whose key is not authorized is refused at once, and the daemon logs its key', async () => {
    const stranger = { serverPublicKey: bus.server.serverPublicKey!, ...zmq.curveKeyPair() };
    const client = await BusClient.connect({ endpoint: tcp.commands, curve: stranger });
    try {
      const started = Date.now();
      const err = await failure(client.request('status', {}));
      expect(Date.now() - started).toBeLessThan(2000);
      expect(err.code).toBe('BusAuthRefused');
      expect(err.message).toBe(`the Haul daemon at ${tcp.commands} refused this client's CURVE key (public key ${stranger.publicKey}); add that key to the daemon's bus/authorized-clients file, or make a key file with \`haul bus-key add\` (docs/bus.md).`);
      expect(bus.log.at(LEVEL.warn)).toContain(`refused a bus connection from 127.0.0.1: its CURVE key ${stranger.publicKey} is not in ${authorizedClientsPath(tmp.dir)}`);
    } finally {
      client.close();
    }
  });

  it('a client without CURVE, or trusting another server key, gets no answer', async () => {
    const plain = new zmq.Dealer({ linger: 0, receiveTimeout: 500 });
    plain.connect(tcp.commands);
    await plain.send(JSON.stringify({ v: 1, id: 'plain', type: 'request', command: 'status', params: {} }));
    await expect(plain.receive()).rejects.toMatchObject({ code: 'EAGAIN' });
    plain.close();

    const impostorKey = zmq.curveKeyPair().publicKey;
    const misled = await BusClient.connect({ endpoint: tcp.commands, curve: { ...admitted, serverPublicKey: impostorKey }, timeoutMs: 500 });
    const err = await failure(misled.request('status', {}));
    misled.close();
    expect(err.code).toBe('DaemonNotRunning');
    expect(err.message).toBe(`no Haul daemon answers at ${tcp.commands} (no answer within 0.5 s); start it with \`haul daemon\` (or check --bus, the firewall, and that the --bus-key file holds this daemon's server key).`);
  });

  it('authorized-clients is re-read on change: a bad line is logged and skipped, the good keys still get in, a removed key is refused', async () => {
    const file = authorizedClientsPath(tmp.dir);
    const second = { serverPublicKey: bus.server.serverPublicKey!, ...zmq.curveKeyPair() };
    fs.writeFileSync(file, `# operators' consoles\nnot-a-key console\n${admitted.publicKey} web\n\n${second.publicKey} second console\n`);
    const c2 = await BusClient.connect({ endpoint: tcp.commands, curve: second });
    expect((await c2.request('status', {})).protocol).toBe(1);
    c2.close();
    expect(bus.log.at(LEVEL.warn)).toContain(`skipped line 2 of ${file}: expected a 40-character Z85 public key, then an optional name`);
    expect(bus.log.at(LEVEL.info)).toContain('bus client second console connected from 127.0.0.1');

    fs.writeFileSync(file, `${admitted.publicKey} web\n`);
    const removed = await BusClient.connect({ endpoint: tcp.commands, curve: second });
    expect((await failure(removed.request('status', {}))).code).toBe('BusAuthRefused');
    expect((await failure(removed.request('status', {}))).code).toBe('BusAuthRefused');
    // Authorized again: the same client gets in with its next request, without a restart.
    fs.appendFileSync(file, `${second.publicKey} second console\n`);
    expect((await removed.request('status', {})).protocol).toBe(1);
    removed.close();
  });

  it('fails closed: with the ZAP handler gone, even an admitted key is refused', async () => {
    const own = tempDir('bus-zap');
    try {
      const ends = await tcpEndpoints();
      const b = await startTestBus({ tcp: ends }, own.dir);
      addBusClient(own.dir, 'web', path.join(own.dir, 'web.key'));
      (b.server as unknown as { zap: { close(): void } }).zap.close();
      const c = await BusClient.connect({ endpoint: ends.commands, curve: readCurveClientKeyFile(path.join(own.dir, 'web.key')), timeoutMs: 700 });
      const err = await failure(c.request('status', {}));
      c.close();
      // libzmq cannot finish the handshake: the client hears nothing at all.
      expect(err.code).toBe('DaemonNotRunning');
      await b.server.stop();
    } finally {
      own.cleanup();
    }
  });

  it('refuses a server key file other users can read, and a client key file likewise', async () => {
    const own = tempDir('bus-keymode');
    try {
      const keyFile = path.join(own.dir, 'c.key');
      addBusClient(own.dir, 'c', keyFile);
      expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
      expect(fs.readFileSync(authorizedClientsPath(own.dir), 'utf8')).toMatch(/^[!-~]{40} c\n$/);
      fs.chmodSync(serverKeyPath(own.dir), 0o644);
      const err = await failure(startTestBus({ tcp: await tcpEndpoints() }, own.dir));
      expect(err.message).toBe(`the bus server key ${serverKeyPath(own.dir)} can be read by other users (mode 644); with it they could pose as this daemon. Run \`chmod 600 ${serverKeyPath(own.dir)}\`.`);
      fs.chmodSync(keyFile, 0o640);
      expect(() => readCurveClientKeyFile(keyFile)).toThrow(`bus key file ${keyFile} can be read by other users (mode 640); its secret key lets anyone command the daemon. Run \`chmod 600 ${keyFile}\`.`);
      fs.chmodSync(serverKeyPath(own.dir), 0o600);
      expect(() => addBusClient(own.dir, 'c', keyFile)).toThrow(`${keyFile} exists already; choose another --out (a key file is never overwritten).`);
    } finally {
      own.cleanup();
    }
  });
});
