// CURVE for the bus's TCP endpoint: the daemon's key pair (made on first start, kept in
// $HAUL_HOME/bus/server.key, mode 0600) and the clients allowed in ($HAUL_HOME/bus/
// authorized-clients, one public key a line), checked by a ZAP handler. zeromq.js has no ZAP
// handler of its own: libzmq asks whatever socket is bound to inproc://zeromq.zap.01 in the
// server socket's context, and with ZMQ_ZAP_ENFORCE_DOMAIN set refuses every client while none
// is bound, so a stopped handler fails closed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zmq from 'zeromq';
import { formatCurveClientKeyFile, Z85_KEY_PATTERN } from '../../shared/bus/curve-keys.js';
import { HaulError } from '../../shared/errors.js';
import type { BusLogger } from './bus-logger.js';
import { z85Encode } from './z85.js';

export const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
export const ZAP_DOMAIN = 'haul';

export interface CurveKeyPair {
  publicKey: string;
  secretKey: string;
}

export function busKeyDirectory(stateDir: string): string {
  return path.join(stateDir, 'bus');
}
export function serverKeyPath(stateDir: string): string {
  return path.join(busKeyDirectory(stateDir), 'server.key');
}
export function authorizedClientsPath(stateDir: string): string {
  return path.join(busKeyDirectory(stateDir), 'authorized-clients');
}

/** Writes a file that holds a secret: new name, mode 0600, fsync, rename. */
export function writeSecretFile(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** The daemon's CURVE key pair, made on first use. A key file others can read is refused. */
export function loadOrCreateServerKeys(stateDir: string): CurveKeyPair & { created: boolean } {
  const file = serverKeyPath(stateDir);
  fs.mkdirSync(busKeyDirectory(stateDir), { recursive: true, mode: 0o700 });
  let text: string;
  try {
    const st = fs.statSync(file);
    if ((st.mode & 0o077) !== 0) {
      throw new HaulError('InvalidArgument', `the bus server key ${file} can be read by other users (mode ${(st.mode & 0o777).toString(8)}); with it they could pose as this daemon. Run \`chmod 600 ${file}\`.`);
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const pair = zmq.curveKeyPair();
    writeSecretFile(file, [
      '# Haul bus server key: the daemon\'s CURVE key pair for its TCP endpoint. Keep it secret.',
      `public-key ${pair.publicKey}`,
      `secret-key ${pair.secretKey}`,
      '',
    ].join('\n'));
    return { ...pair, created: true };
  }
  const publicKey = /^public-key (\S+)$/m.exec(text)?.[1];
  const secretKey = /^secret-key (\S+)$/m.exec(text)?.[1];
  if (!publicKey || !secretKey || !Z85_KEY_PATTERN.test(publicKey) || !Z85_KEY_PATTERN.test(secretKey)) {
    throw new HaulError('InvalidArgument', `the bus server key ${file} is damaged (it needs a "public-key" and a "secret-key" line of 40 Z85 characters each). Restore it from a copy, or delete it to make a new one (every client key file then needs the new server key).`);
  }
  return { publicKey, secretKey, created: false };
}

export const BUS_CLIENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Makes a key pair for a new TCP client of the bus: its key file (its key pair and the daemon's
 * public key, mode 0600) goes to `keyFile`, its public key to authorized-clients. The daemon
 * re-reads that file on each connection, so the client is let in without a restart.
 */
export function addBusClient(stateDir: string, name: string, keyFile: string): { publicKey: string; serverPublicKey: string; authorizedClients: string } {
  if (!BUS_CLIENT_NAME.test(name)) {
    throw new HaulError('InvalidArgument', `${JSON.stringify(name)} is not a bus client name: use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit.`);
  }
  const server = loadOrCreateServerKeys(stateDir);
  const pair = zmq.curveKeyPair();
  try {
    const fd = fs.openSync(keyFile, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      fs.writeSync(fd, formatCurveClientKeyFile({ serverPublicKey: server.publicKey, ...pair }, `bus client ${name}`));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new HaulError('InvalidArgument', `${keyFile} exists already; choose another --out (a key file is never overwritten).`);
    throw new HaulError('InvalidArgument', `cannot write the key file ${keyFile}: ${(err as Error).message}.`, { cause: err });
  }
  const authorized = authorizedClientsPath(stateDir);
  fs.appendFileSync(authorized, `${pair.publicKey} ${name}\n`, { mode: 0o600 });
  return { publicKey: pair.publicKey, serverPublicKey: server.publicKey, authorizedClients: authorized };
}

export interface AuthorizedClient {
  key: string;
  name: string;
}

/**
 * The authorized-clients file, re-read when it changes, so adding a client needs no restart.
 * A bad line is logged and skipped; it does not lock out the clients on the good lines.
 */
export class AuthorizedClients {
  private cached: { stamp: string; clients: Map<string, AuthorizedClient> } | undefined;

  constructor(readonly file: string, private readonly logger: BusLogger) {}

  lookup(key: string): AuthorizedClient | undefined {
    return this.current().get(key);
  }

  private current(): Map<string, AuthorizedClient> {
    let stamp: string;
    try {
      const st = fs.statSync(this.file);
      stamp = `${st.mtimeMs}/${st.size}/${st.ino}`;
    } catch {
      this.cached = undefined;
      return new Map();
    }
    if (this.cached?.stamp === stamp) return this.cached.clients;
    const clients = new Map<string, AuthorizedClient>();
    const text = fs.readFileSync(this.file, 'utf8');
    for (const [i, raw] of text.split('\n').entries()) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const [key, ...name] = line.split(/\s+/);
      if (!key || !Z85_KEY_PATTERN.test(key)) {
        this.logger.warn({ file: this.file, line: i + 1 }, `skipped line ${i + 1} of ${this.file}: expected a 40-character Z85 public key, then an optional name`);
        continue;
      }
      clients.set(key, { key, name: name.join(' ') || key.slice(0, 8) });
    }
    this.cached = { stamp, clients };
    return clients;
  }
}

/** Answers libzmq's ZAP requests (RFC 27) for the daemon's CURVE sockets in one context. */
export class ZapHandler {
  private readonly socket: zmq.Router;

  constructor(context: zmq.Context, private readonly clients: AuthorizedClients, private readonly logger: BusLogger) {
    this.socket = new zmq.Router({ context, linger: 0 });
  }

  async start(): Promise<void> {
    await this.socket.bind(ZAP_ENDPOINT);
    void this.serve();
  }

  close(): void {
    this.socket.close();
  }

  private async serve(): Promise<void> {
    try {
      for await (const request of this.socket) await this.socket.send(this.answer(request));
    } catch (err) {
      if (!this.socket.closed) this.logger.error({ err }, `the bus's ZAP handler stopped (${(err as Error).message}); TCP clients are refused until the daemon restarts`);
    }
  }

  private answer(request: Buffer[]): (Buffer | string)[] {
    // [routing id, empty, version, request id, domain, address, identity, mechanism, credentials...]
    const [route, delimiter, version, requestId, domain, address, , mechanism, ...credentials] = request;
    const reply = (status: string, text: string, user = '') => [route!, delimiter!, version ?? '1.0', requestId ?? '', status, text, user, ''];
    const from = address?.toString('utf8') ?? '?';
    if (version?.toString() !== '1.0' || domain?.toString() !== ZAP_DOMAIN || mechanism?.toString() !== 'CURVE' || credentials.length !== 1 || credentials[0]!.byteLength !== 32) {
      this.logger.warn({ address: from, mechanism: mechanism?.toString() }, `refused a bus connection from ${from}: not a CURVE handshake in the ${ZAP_DOMAIN} domain`);
      return reply('400', 'CURVE required');
    }
    const key = z85Encode(credentials[0]!);
    const client = this.clients.lookup(key);
    if (!client) {
      this.logger.warn({ address: from, key }, `refused a bus connection from ${from}: its CURVE key ${key} is not in ${this.clients.file}`);
      return reply('400', 'unknown client key');
    }
    this.logger.info({ address: from, key, client: client.name }, `bus client ${client.name} connected from ${from}`);
    return reply('200', 'OK', client.name);
  }
}
