// The clients this server backs up: address, login, pinned host key, paths and excludes. Until
// the database arrives (daemon issue), they live in one JSON file in the server's state
// directory, rewritten atomically. The repository never depends on it: snapshots name their
// client themselves.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HaulError } from '../../shared/errors.js';

export interface ClientConfig {
  name: string;
  host: string;
  port: number;
  user: string;
  /** OpenSSH SHA-256 fingerprint of the client's host key, pinned on first contact. */
  hostKey?: string;
  paths: string[];
  excludes: string[];
  oneFileSystem: boolean;
  created: string;
}

interface RegistryFile {
  format: 'haul-clients-v1';
  clients: ClientConfig[];
}

const namePattern = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** `user@host[:port]`, with `[v6]` brackets for IPv6 literals. */
export function parseAddress(address: string): { user: string; host: string; port: number } {
  const m = /^([a-z_][a-z0-9_.-]{0,31})@(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(address);
  if (!m) throw new HaulError('InvalidArgument', `${JSON.stringify(address)} is not an address of the form user@host or user@host:port.`);
  const port = m[3] ? Number(m[3]) : 22;
  if (port < 1 || port > 65535) throw new HaulError('InvalidArgument', `port ${port} is out of range (1-65535).`);
  return { user: m[1]!, host: m[2]!.replace(/^\[|\]$/g, ''), port };
}

export class ClientRegistry {
  private readonly file: string;

  constructor(readonly stateDir: string) {
    this.file = path.join(stateDir, 'clients.json');
  }

  list(): ClientConfig[] {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new HaulError('StorageFailure', `cannot read ${this.file}: ${(err as Error).message}.`);
    }
    const parsed = JSON.parse(text) as RegistryFile;
    if (parsed.format !== 'haul-clients-v1') throw new HaulError('UnsupportedFormat', `${this.file} has an unknown format; upgrade Haul.`);
    return parsed.clients;
  }

  get(name: string): ClientConfig {
    const c = this.list().find((x) => x.name === name);
    if (!c) throw new HaulError('InvalidArgument', `there is no client named ${JSON.stringify(name)}. \`haul client list\` shows the clients; \`haul client add\` adds one.`);
    return c;
  }

  add(client: Omit<ClientConfig, 'created'>): ClientConfig {
    if (!namePattern.test(client.name)) {
      throw new HaulError('InvalidArgument', `${JSON.stringify(client.name)} is not a valid client name: use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit.`);
    }
    if (client.paths.length === 0) throw new HaulError('InvalidArgument', 'a client needs at least one path to back up (--path /home, repeatable).');
    for (const p of client.paths) {
      const normalised = p === '/' || (p.startsWith('/') && p.slice(1).split('/').every((c) => c !== '' && c !== '.' && c !== '..'));
      if (!normalised || p.includes('\0')) throw new HaulError('InvalidArgument', `${JSON.stringify(p)} is not an absolute, normalised path (like /home or /srv/www).`);
    }
    const clients = this.list();
    if (clients.some((c) => c.name === client.name)) throw new HaulError('InvalidArgument', `a client named ${client.name} exists already.`);
    const created: ClientConfig = { ...client, created: new Date().toISOString() };
    this.save([...clients, created]);
    return created;
  }

  update(name: string, change: (c: ClientConfig) => ClientConfig): ClientConfig {
    const clients = this.list();
    const i = clients.findIndex((c) => c.name === name);
    if (i < 0) this.get(name);
    clients[i] = change(clients[i]!);
    this.save(clients);
    return clients[i]!;
  }

  remove(name: string): void {
    this.get(name);
    this.save(this.list().filter((c) => c.name !== name));
  }

  private save(clients: ClientConfig[]): void {
    fs.mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    const temp = `${this.file}.tmp-${randomBytes(6).toString('hex')}`;
    const fd = fs.openSync(temp, 'wx', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify({ format: 'haul-clients-v1', clients } satisfies RegistryFile, null, 2) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, this.file);
    const dirFd = fs.openSync(this.stateDir, 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
  }
}
