// `haul web` runs the console's web server. This is the one place the daemon side imports web/:
// the command line launches every Haul process, and the console needs only the database from the
// daemon's side (see the lint rules in eslint.config.js).
import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { openDatabase } from '../../database/open-database.js';
import { loadConsoleKey } from '../../database/secret-box.js';
import { UserStore } from '../../database/users.js';
import { readCurveClientKeyFile } from '../../../shared/bus/curve-keys.js';
import { addBusOptions, busEndpoint, type BusOptions } from '../bus.js';
import { globalOptions, stateDirectory } from '../context.js';

export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new HaulError('InvalidArgument', `--listen ${JSON.stringify(value)} is not HOST:PORT; for example 127.0.0.1:8080, or [::1]:8080.`);
  }
  return { host: m[1] ?? m[2]!, port };
}

export function registerWeb(program: Command): void {
  const web = program
    .command('web')
    .description('run the web console (HTTP); put it behind a TLS reverse proxy before exposing it beyond this machine')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8080')
    .option('--trust-proxy', 'a reverse proxy on this machine forwards requests: use its X-Forwarded-For (rate limits, audit) and X-Forwarded-Proto')
    .option('--secure-cookies', 'always mark the session cookie Secure (the browser reaches the console over HTTPS)')
    .option('--directory <file>', 'check the passwords of directory accounts with LDAP, as this JSON file says (docs/operations.md, Directory login); default: $HAUL_DIRECTORY_FILE')
    .option('--fleet', 'follow every daemon on this database (several daemons on one PostgreSQL), each at the bus endpoint it recorded, instead of one --bus (default: $HAUL_WEB_FLEET=1)');
  addBusOptions(web)
    .action(async (opts: { listen: string; trustProxy?: boolean; secureCookies?: boolean; directory?: string; fleet?: boolean } & BusOptions, cmd: Command) => {
      const { host, port } = parseListen(opts.listen);
      const directoryFile = opts.directory ?? (process.env['HAUL_DIRECTORY_FILE'] || undefined);
      const fleet = opts.fleet ?? ['1', 'true', 'yes'].includes(process.env['HAUL_WEB_FLEET'] ?? '');
      if (fleet && opts.bus !== undefined) {
        throw new HaulError('InvalidArgument', '--fleet follows the daemons recorded in the database and --bus names one daemon; give one of them.');
      }
      // Loaded here, not at the top: every other command starts faster without Express and socket.io.
      const { createWebServer } = await import('../../../web/server/web-server.js');
      const { loadDirectoryConfig } = await import('../../../web/server/directory/directory-config.js');
      // Checked before anything starts: a broken directory config stops the console with its field.
      const directory = directoryFile ? loadDirectoryConfig(directoryFile) : undefined;
      const stateDir = stateDirectory(globalOptions(cmd));
      const secrets = loadConsoleKey(stateDir);
      const database = await openDatabase({ stateDir });
      const keyFile = opts.busKey ?? (process.env['HAUL_BUS_KEY'] || undefined);
      const curve = keyFile ? { curve: readCurveClientKeyFile(keyFile) } : {};
      const log = (m: string) => process.stderr.write(`haul web: ${m}\n`);
      // The console starts whether or not the daemons run; the link keeps trying and the pages say so.
      const daemon = fleet
        ? new (await import('../../../web/server/fleet-daemon-link.js')).FleetDaemonLink({ database, ...curve, log })
        : new (await import('../../../web/server/bus-daemon-link.js')).BusDaemonLink({ endpoint: busEndpoint(cmd, opts), ...curve, database, log });
      await daemon.start();
      const server = createWebServer({ database, daemon, log, secrets, ...(directory ? { directory } : {}), trustProxy: Boolean(opts.trustProxy), secureCookies: Boolean(opts.secureCookies) });
      let url: string;
      try {
        url = await server.listen(host, port);
      } catch (err) {
        await server.close().catch(() => undefined);
        await database.close();
        throw err;
      }
      const users = await new UserStore(database).list();
      process.stdout.write(`Haul console on ${url} (database ${database.location.display})\n`);
      if (directory) process.stdout.write(`Directory accounts sign in through ${directory.url}; local accounts sign in as before\n`);
      if (!users.some((u) => u.role === 'admin' && !u.disabled && u.source === 'local')) {
        process.stdout.write('No local admin can log in yet (the one who can while the directory is down): create one with `haul user add NAME --role admin`.\n');
      }
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await server.close();
      await database.close();
      process.stdout.write('Haul console stopped\n');
    });
}
