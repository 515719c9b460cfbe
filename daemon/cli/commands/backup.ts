import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { shortId } from '../../repository/snapshot.js';
import { addBusOptions, daemonMayListen, type BusOptions } from '../bus.js';
import { globalOptions, output, recordSnapshotOrWarn, startUnlocking, stateDirectory, withDatabase } from '../context.js';
import { createProgress, formatBytes } from '../progress.js';

/** probe/dist of this installation (compiled CLI lives in dist/daemon/cli/commands). */
export function defaultProbeDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '../../../..') : path.resolve(here, '../../..');
  return process.env['HAUL_PROBE_DIR'] ?? path.join(root, 'probe', 'dist');
}

export function registerBackup(program: Command): void {
  addBusOptions(program.command('backup <client>'))
    .description('back up a registered client now, over SSH (see `haul client add`): as a job of the daemon when one runs on this server, else in this process')
    .option('--tag <tag>', 'tag the snapshot (repeatable; runs in this process: daemon jobs take no tags)', (v: string, acc: string[]) => [...acc, v], [])
    .option('--no-daemon', 'back up in this process even when a daemon runs (it needs the passphrase)')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts: BusOptions & { tag: string[]; daemon: boolean; json?: boolean }, cmd: Command) => {
      const g = globalOptions(cmd);
      if (opts.daemon && opts.tag.length === 0 && daemonMayListen(cmd, opts)) {
        const { backupThroughDaemon } = await import('../daemon-backup.js');
        if (await backupThroughDaemon(cmd, name, { ...opts, ...(g.quiet ? { quiet: true } : {}) })) return;
      }
      const home = stateDirectory(g);
      // Unlocking the key (Argon2id, about half a second in the thread pool) needs neither the
      // database nor the client: it starts first, and loading the SSH and session code and
      // opening the database happen meanwhile, then connecting and checking the probe. Errors
      // keep their order: the client's first (unknown, disabled), then a missing repository or
      // passphrase (before connecting), then a wrong passphrase (after connecting, before the
      // probe runs: runPullBackupJob awaits the repository before it starts the session).
      const starting = startUnlocking(cmd);
      starting.catch(() => undefined);
      const [{ ClientStore }, { runPullBackupJob }, { previousCacheDirectory }, { loadOrCreateServerIdentity }] = await Promise.all([
        import('../../database/client-store.js'),
        import('../../jobs/pull-backup-job.js'),
        import('../../session/previous-cache.js'),
        import('../../session/server-identity.js'),
      ]);
      await withDatabase(cmd, async (db) => {
        const store = new ClientStore(db.prisma);
        const client = await store.get(name);
        if (!client.enabled) {
          throw new HaulError('ClientDisabled', `client ${name} is disabled, so it is not backed up. If its address and paths are right (\`haul client list\`), enable it with \`haul client set ${name} --enable\`.`);
        }
        const { unlocked: repo } = await starting;
        const progress = createProgress(`backup ${name}`, { quiet: g.quiet || opts.json, bytes: true });
        const log: string[] = [];
        const result = await runPullBackupJob({
          repo,
          client,
          pinHostKey: async (fingerprint) => {
            await store.pinHostKey(name, fingerprint);
          },
          identity: loadOrCreateServerIdentity(path.join(home, 'identity')),
          probeDir: defaultProbeDir(),
          previousCacheDir: previousCacheDirectory(home),
          tags: opts.tag,
          onProgress: (p) => progress.update(p.bytesScanned, p.expectedBytes, p.currentPath),
          onLog: (line) => {
            log.push(line);
            if (!opts.json && !g.quiet) process.stderr.write(`${line}\n`);
          },
        });
        progress.stop();
        await recordSnapshotOrWarn(cmd, result.id, result.snapshot, { db, clientId: client.id });
        const s = result.snapshot.stats;
        output(opts.json, { ...result, log, peakRssBytes: process.resourceUsage().maxRSS * 1024 }, () =>
          `snapshot ${shortId(result.id)} saved for client ${name}\n` +
          `  ${s.files} files, ${s.dirs} directories, ${formatBytes(s.bytes)} (${formatBytes(s.bytesRead)} read on the client)\n` +
          `  added ${formatBytes(s.bytesNew)} in ${s.blobsNew} new blobs, ${formatBytes(s.bytesStored)} stored; ${formatBytes(result.bytesOnWire)} on the wire; ${(s.durationMs / 1000).toFixed(1)} s\n`);
        if (s.errors > 0) {
          throw new HaulError('IncompleteSnapshot', `the snapshot ${shortId(result.id)} was saved, but ${s.errors} item(s) could not be read on the client (see the warnings above).`);
        }
      });
    });
}
