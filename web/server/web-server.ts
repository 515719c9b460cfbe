// The console's web server: Express 5 for the REST API and the built Svelte app, socket.io for
// live events, both on one HTTP server. It works from the database (accounts, sessions, audit
// trail) and the daemon link; it never opens the repository and holds no repository key.
import * as fs from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Express } from 'express';
import { ApiTokenStore } from '../../daemon/database/api-tokens.js';
import { AuditTrail } from '../../daemon/database/audit-trail.js';
import { ClientStore } from '../../daemon/database/client-store.js';
import type { Database } from '../../daemon/database/open-database.js';
import { SecretBox } from '../../daemon/database/secret-box.js';
import { SessionStore, type SessionPolicy } from '../../daemon/database/sessions.js';
import { TenantStore } from '../../daemon/database/tenants.js';
import { UserStore, type AccountPolicy, type PasswordHashCost } from '../../daemon/database/users.js';
import { HaulError } from '../../shared/errors.js';
import { authentication } from './authentication.js';
import type { ConsoleServices } from './console-services.js';
import { DisconnectedDaemonLink, type DaemonLink } from './daemon-link.js';
import type { DirectoryConfig } from './directory/directory-config.js';
import { DirectoryLogin } from './directory/directory-login.js';
import { errorBody, errorHandler } from './http-errors.js';
import { LoginRateLimiter, defaultLoginRateLimits, type LoginRateLimits } from './login-rate-limiter.js';
import { openApiDocument } from './openapi.js';
import { mountRoutes } from './route-definition.js';
import { routes } from './routes.js';
import { ScopedObjects } from './scoped-objects.js';
import { securityHeaders } from './security-headers.js';
import { attachSocketServer, type SocketServer } from './socket-events.js';

export interface WebServerOptions {
  database: Database;
  /** Where backups come from; until the bus is wired, a link that says "not connected". */
  daemon?: DaemonLink;
  /** The built app (web/dist of this installation unless given). */
  staticDir?: string;
  /** Behind a reverse proxy on this machine: believe its X-Forwarded-For and -Proto. */
  trustProxy?: boolean;
  /** Always mark the session cookie Secure (HTTPS terminated by a proxy that does not say so). */
  secureCookies?: boolean;
  loginRateLimits?: Partial<LoginRateLimits>;
  accountPolicy?: Partial<AccountPolicy>;
  sessionPolicy?: Partial<SessionPolicy>;
  passwordHashCost?: PasswordHashCost;
  /** Seals TOTP secrets in the database; `haul web` passes the key file's. Default: a key for this process only. */
  secrets?: SecretBox;
  /** Directory (LDAP) logins; without it every account is local. */
  directory?: DirectoryConfig;
  log?: (message: string) => void;
}

export interface WebServer {
  readonly app: Express;
  readonly httpServer: HttpServer;
  readonly sockets: SocketServer;
  readonly services: ConsoleServices;
  /** Starts listening; resolves with the URL to open. */
  listen(host: string, port: number): Promise<string>;
  close(): Promise<void>;
}

/** web/dist of this installation (compiled code runs from dist/web/server). */
export function defaultStaticDirectory(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '../../..') : path.resolve(here, '../..');
  return path.join(root, 'web', 'dist');
}

const SESSION_PURGE_EVERY_MS = 10 * 60_000;

export function createWebServer(options: WebServerOptions): WebServer {
  const log = options.log ?? ((m: string) => process.stderr.write(`haul web: ${m}\n`));
  const db = options.database;
  const users = new UserStore(db, {
    secrets: options.secrets ?? SecretBox.random(),
    ...(options.accountPolicy ? { policy: options.accountPolicy } : {}),
    ...(options.passwordHashCost ? { hashCost: options.passwordHashCost } : {}),
  });
  const services: ConsoleServices = {
    users,
    sessions: new SessionStore(db, options.sessionPolicy ? { policy: options.sessionPolicy } : {}),
    tokens: new ApiTokenStore(db),
    audit: new AuditTrail(db),
    clients: new ClientStore(db.prisma),
    tenants: new TenantStore(db.prisma),
    scoped: new ScopedObjects(db.prisma),
    daemon: options.daemon ?? new DisconnectedDaemonLink(),
    loginLimiter: new LoginRateLimiter({ ...defaultLoginRateLimits, ...options.loginRateLimits }),
    secureCookies: options.secureCookies ?? false,
    ...(options.directory ? { directory: new DirectoryLogin(options.directory, users, log) } : {}),
  };
  const staticDir = options.staticDir ?? defaultStaticDirectory();

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', options.trustProxy ? 'loopback' : false);
  app.use(securityHeaders);
  app.use('/api', express.json({ limit: '64kb' }));
  app.use('/api', authentication(services));
  const openApi = openApiDocument(routes);
  app.get('/api/openapi.json', (_req, res) => {
    res.json(openApi);
  });
  mountRoutes(app, routes, services);
  app.use('/api', (req, res) => {
    res.status(404).json(errorBody('NotFound', `there is no API route ${req.method} ${req.originalUrl.split('?')[0]}; /api/openapi.json lists them.`));
  });
  app.use(express.static(staticDir, { index: false, maxAge: '1h', setHeaders: (res, file) => {
    // Vite puts a content hash in every asset name, so an asset never changes under its name.
    if (file.includes(`${path.sep}assets${path.sep}`)) res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
  } }));
  // The app routes in the browser (#/users); every other page path gets the app itself.
  app.use((req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    const index = path.join(staticDir, 'index.html');
    if (!fs.existsSync(index)) {
      res.status(503).type('text/plain').send(`The console's pages are not built (${index} is missing). Run \`npm run build\` in the Haul directory, then reload.\n`);
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(index);
  });
  app.use(errorHandler(log));

  const httpServer = createServer(app);
  const sockets = attachSocketServer(httpServer, services, log);
  const purge = setInterval(() => {
    services.sessions.purgeExpired().catch((err: unknown) => log(`purging expired sessions failed: ${(err as Error).message}`));
  }, SESSION_PURGE_EVERY_MS);
  purge.unref();

  return {
    app, httpServer, sockets, services,
    listen(host, port) {
      return new Promise((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException) => {
          const why = err.code === 'EADDRINUSE' ? 'the port is in use (is another console running?); choose another with --listen' : err.code === 'EACCES' ? 'this user may not listen there (ports below 1024 need privileges); choose a port above 1024' : err.message;
          reject(new HaulError('ListenFailed', `cannot listen on ${host}:${port}: ${why}.`, { cause: err }));
        };
        httpServer.once('error', onError);
        httpServer.listen(port, host, () => {
          httpServer.off('error', onError);
          const address = httpServer.address() as AddressInfo;
          const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
          resolve(`http://${shown}:${address.port}`);
        });
      });
    },
    async close() {
      clearInterval(purge);
      await sockets.close();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await services.daemon.close();
    },
  };
}
