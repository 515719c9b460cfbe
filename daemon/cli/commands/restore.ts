import * as path from 'node:path';
import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import type { ClientConfig } from '../../clients/client-config.js';
import { ClientStore } from '../../database/client-store.js';
import type { PinHostKey } from '../../jobs/client-connection.js';
import { runRestoreToClientJob } from '../../jobs/restore-to-client-job.js';
import { Restorer } from '../../restorer/restorer.js';
import { shortId, type StoredSnapshot } from '../../repository/snapshot.js';
import type { Repository } from '../../repository/repository.js';
import { loadOrCreateServerIdentity } from '../../session/server-identity.js';
import { globalOptions, openRepository, output, stateDirectory, withDatabase } from '../context.js';
import { createProgress, formatBytes } from '../progress.js';
import { defaultProbeDir } from './backup.js';
import { splitSnapshotRef } from './ls.js';

interface RestoreOptions {
  target?: string;
  client?: string;
  toClient?: string | boolean;
  overwrite?: boolean;
  json?: boolean;
}

export function registerRestore(program: Command): void {
  program
    .command('restore <snapshot[:path]>')
    .description('restore a snapshot, or a file or directory inside it, into a local directory or back onto a client')
    .option('--target <dir>', 'directory to restore into (created if missing); with --to-client a directory on the client, and without it the original paths')
    .option('--client <name>', 'with "latest": the latest snapshot of this client')
    .option('--to-client [client]', "restore onto a client over SSH through the probe (default: the snapshot's own client)")
    .option('--overwrite', 'replace files that already exist in the target')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Examples:
  haul restore latest:/srv/www --client web1 --target /tmp/www      onto this server
  haul restore latest:/srv/www --client web1 --to-client            back to /srv/www on web1
  haul restore latest:/srv/www --client web1 --to-client web2 --target /srv/restore`)
    .action(async (ref: string, opts: RestoreOptions, cmd: Command) => {
      const repo = await openRepository(cmd, { kind: 'shared', purpose: 'restore' });
      const { snapshot, path: subpath } = splitSnapshotRef(ref);
      const snap = await repo.findSnapshot(snapshot, opts.client);
      if (opts.toClient !== undefined) return restoreToClient(cmd, repo, snap, subpath, opts);
      if (opts.target === undefined) throw new HaulError('InvalidArgument', 'say where to restore: --target DIR on this server, or --to-client [CLIENT] to put the files back onto a client.');
      const progress = createProgress('restore', { quiet: globalOptions(cmd).quiet || opts.json, bytes: true });
      const result = await new Restorer(repo, {
        overwrite: Boolean(opts.overwrite),
        onProgress: (p) => progress.update(p.bytes, subpath === '/' ? snap.stats.bytes : undefined, p.currentPath),
      }).restore(snap, subpath, opts.target);
      progress.stop();
      output(opts.json, { snapshot: snap.id, ...result }, () =>
        `restored ${result.files} files, ${result.dirs} directories, ${formatBytes(result.bytes)} from snapshot ${shortId(snap.id)} into ${opts.target}\n` +
        result.problems.map((p) => `haul: error: ${JSON.stringify(p.path).slice(1, -1)}: ${p.message}\n`).join(''));
      if (result.problems.length > 0) {
        throw new HaulError('RestoreRefused', `${result.problems.length} item(s) were not restored (listed above); everything else was restored and verified.`);
      }
    });
}

async function restoreToClient(cmd: Command, repo: Repository, snap: StoredSnapshot, subpath: string, opts: RestoreOptions): Promise<void> {
  await withDatabase(cmd, async (db) => {
    const store = new ClientStore(db.prisma);
    const client = await store.get(typeof opts.toClient === 'string' ? opts.toClient : snap.client);
    await restoreOnto(cmd, repo, snap, subpath, opts, client, async (fingerprint) => {
      await store.pinHostKey(client.name, fingerprint);
    });
  });
}

async function restoreOnto(cmd: Command, repo: Repository, snap: StoredSnapshot, subpath: string, opts: RestoreOptions, client: ClientConfig, pinHostKey: PinHostKey): Promise<void> {
  const g = globalOptions(cmd);
  const home = stateDirectory(g);
  const progress = createProgress(`restore onto ${client.name}`, { quiet: g.quiet || opts.json, bytes: true });
  const log: string[] = [];
  const result = await runRestoreToClientJob({
    repo,
    snapshot: snap,
    subpath,
    client,
    pinHostKey,
    identity: loadOrCreateServerIdentity(path.join(home, 'identity')),
    probeDir: defaultProbeDir(),
    ...(opts.target !== undefined ? { target: opts.target } : {}),
    overwrite: Boolean(opts.overwrite),
    onProgress: (p) => progress.update(p.bytes, p.totalBytes, p.currentPath),
    onLog: (line) => {
      log.push(line);
      if (!opts.json && !g.quiet) process.stderr.write(`${line}\n`);
    },
  });
  progress.stop();
  const where = opts.target === undefined ? 'at their original paths' : `into ${opts.target}`;
  const more = result.problemCount - result.problems.length;
  output(opts.json, { snapshot: snap.id, originalPaths: opts.target === undefined, ...result, log }, () =>
    `restored ${result.files} files, ${result.dirs} directories, ${result.symlinks} symlinks, ${result.hardlinks} hard links, ${result.specials} other entries, ` +
      `${formatBytes(result.bytes)} from snapshot ${shortId(snap.id)} onto client ${client.name} ${where}\n` +
      (result.ownerNote ? `note: ${result.ownerNote}\n` : '') +
      result.problems.map((p) => `haul: error: ${p.path}: ${p.message}\n`).join('') +
      (more > 0 ? `haul: error: … and ${more} more\n` : ''));
  if (result.problemCount > 0) {
    const hint = result.problems.some((p) => p.exists) ? ' Restore with --overwrite to replace the entries that already exist.' : '';
    throw new HaulError('RestoreRefused', `${result.problemCount} item(s) were not restored on ${client.name} (listed above); everything else was restored and verified.${hint}`);
  }
}
