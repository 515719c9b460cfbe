// A real console for tests: the Express + socket.io server on 127.0.0.1 (a free port) over a
// fresh SQLite database, serving the built app from web/dist; an HTTP client that keeps a
// session cookie and its CSRF token like a browser; and headless Chromium (Debian's) through
// playwright-core.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { openDatabase, type Database } from '../../daemon/database/open-database.js';
import type { Role } from '../../shared/roles.js';
import type { DaemonLink } from '../../web/server/daemon-link.js';
import { createWebServer, type WebServer, type WebServerOptions } from '../../web/server/web-server.js';
import { projectRoot } from './cli.js';
import { testPasswordHashCost } from './store-databases.js';

export interface TestConsole {
  url: string;
  db: Database;
  server: WebServer;
  /** Adds a user with a known password (no password change required). */
  addUser(username: string, role: Role, password?: string): Promise<{ username: string; password: string }>;
  close(): Promise<void>;
}

export const TEST_PASSWORD = 'correct horse battery';

export async function startTestConsole(options: Partial<Omit<WebServerOptions, 'database'>> & { daemonFor?: (db: Database) => Promise<DaemonLink> } = {}): Promise<TestConsole> {
  ensureWebBuilt();
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-web-'));
  const db = await openDatabase({ stateDir });
  const { daemonFor, ...serverOptions } = options;
  const daemon = daemonFor ? await daemonFor(db) : serverOptions.daemon;
  const server = createWebServer({ database: db, passwordHashCost: testPasswordHashCost, log: () => undefined, ...serverOptions, ...(daemon ? { daemon } : {}) });
  const url = await server.listen('127.0.0.1', 0);
  return {
    url, db, server,
    async addUser(username, role, password = TEST_PASSWORD) {
      await server.services.users.create({ username, role, password });
      return { username, password };
    },
    async close() {
      await server.close();
      await db.close();
      fs.rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds web/dist when it is missing or older than web/app, so tests never run a stale app. */
export function ensureWebBuilt(): void {
  const index = path.join(projectRoot, 'web', 'dist', 'index.html');
  const sources = Math.max(newestMtime(path.join(projectRoot, 'web', 'app')), fs.statSync(path.join(projectRoot, 'web', 'vite.config.ts')).mtimeMs);
  if (fs.existsSync(index) && fs.statSync(index).mtimeMs >= sources) return;
  const r = spawnSync(process.execPath, [path.join(projectRoot, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'], { cwd: projectRoot, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the console app failed (npm run build:web):\n${r.stdout}${r.stderr}`);
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

/** Talks to the API like the console's pages do: a session cookie, and the CSRF token on changes. */
export class ApiClient {
  cookie: string | undefined;
  csrfToken: string | undefined;

  constructor(readonly baseUrl: string, private readonly bearer?: string) {}

  async request<T = Record<string, unknown>>(method: string, path: string, body?: unknown, options: { csrf?: boolean; headers?: Record<string, string> } = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...options.headers };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.cookie) headers['cookie'] = this.cookie;
    if (this.bearer) headers['authorization'] = `Bearer ${this.bearer}`;
    if (method !== 'GET' && this.csrfToken && options.csrf !== false) headers['x-csrf-token'] = this.csrfToken;
    const res = await fetch(this.baseUrl + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
  }

  /** Logs in; on success keeps the cookie and CSRF token for later requests. */
  async login(username: string, password: string, totp?: string): Promise<ApiResponse> {
    const res = await this.request('POST', '/api/login', { username, password, ...(totp === undefined ? {} : { totp }) });
    if (res.status === 200) {
      this.cookie = res.headers.get('set-cookie')!.split(';')[0];
      this.csrfToken = res.body['csrfToken'] as string;
    }
    return res;
  }
}

export function chromiumSkipReason(): string | undefined {
  return fs.existsSync('/usr/bin/chromium') ? undefined : 'no /usr/bin/chromium: apt-get install -y chromium';
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}
