// What every command needs: where the repository and the database are, and how to open them.
import type { Command } from 'commander';
import { parseDuration } from '../../shared/duration.js';
import { HaulError } from '../../shared/errors.js';
import type { Database } from '../database/open-database.js';
import { shortId, type Snapshot } from '../repository/snapshot.js';
import type { Storage } from '../storage/storage.js';
import type { LockKind } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';
import { holdLock } from './held-locks.js';
import { repositoryPassphrase } from './passphrase.js';

// The repository, its storage and the database are imported where they are opened, not above:
// every command loads this module, and `haul backup` handed to the daemon opens none of them
// (their native addons, argon2 and zstd, alone cost tens of milliseconds to load).

export interface GlobalOptions {
  home?: string;
  repo?: string;
  passwordFile?: string;
  quiet?: boolean;
}

export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** The server's state directory: its SSH identity and the SQLite database (clients, jobs). */
export function stateDirectory(opts: GlobalOptions): string {
  return opts.home ?? process.env['HAUL_HOME'] ?? '/var/lib/haul';
}

/** The storage of --repo (or HAUL_REPOSITORY): a local directory or an `s3:` location. */
export async function repositoryStorage(opts: GlobalOptions): Promise<Storage> {
  const repo = opts.repo ?? process.env['HAUL_REPOSITORY'];
  if (!repo) throw new HaulError('InvalidArgument', 'no repository given. Pass --repo DIR (or s3:https://HOST/BUCKET/PREFIX) or set HAUL_REPOSITORY.');
  const { openStorage } = await import('../storage/open-storage.js');
  return opened(await openStorage(repo));
}

/**
 * Storages this command opened. A local one caches open file handles for reading packs: closed
 * when the command ends (main.ts), they are not left for the garbage collector, which closes them
 * with a warning on stderr if it runs before the process exits.
 */
const openedStorages: Storage[] = [];

function opened(storage: Storage): Storage {
  openedStorages.push(storage);
  return storage;
}

export async function closeStorages(): Promise<void> {
  const all = openedStorages.splice(0);
  await Promise.all(all.map((s) => s.close?.().catch(() => undefined)));
}

/**
 * Opens the repository; with `lock`, also takes a repository lock for the command's lifetime
 * (shared for anything that reads packs or adds data, exclusive for what deletes them).
 * `location` opens another repository than --repo (`repo copy --from`).
 */
export async function openRepository(cmd: Command, lock?: { kind: LockKind; purpose: string }, location?: string): Promise<Repository> {
  const repo = await (await startUnlocking(cmd, location)).unlocked;
  if (lock) {
    const { lockRepository } = await import('../repository/lock.js');
    holdLock(await lockRepository(repo, lock.kind, { purpose: lock.purpose, waitMs: lockWaitMs() }));
  }
  return repo;
}

/**
 * Checks that there is a repository and gets the passphrase (asking on a terminal), then starts
 * unlocking its key without waiting for it: Argon2id runs in the thread pool while the caller
 * goes on (`haul backup` connects meanwhile). Whatever fails fast fails here, before the caller
 * has done anything; only a wrong passphrase waits for `unlocked`.
 */
export async function startUnlocking(cmd: Command, location?: string): Promise<{ unlocked: Promise<Repository> }> {
  const opts = globalOptions(cmd);
  const [{ openStorage }, { Repository }] = await Promise.all([import('../storage/open-storage.js'), import('../repository/repository.js')]);
  const storage = location === undefined ? await repositoryStorage(opts) : opened(await openStorage(location));
  if (!(await storage.isInitialised())) {
    throw new HaulError('RepositoryNotFound', `there is no Haul repository at ${storage.location}. Check --repo (or HAUL_REPOSITORY), or create one with \`haul init\`.`);
  }
  const unlocked = Repository.open(storage, await repositoryPassphrase(opts));
  // Awaited by the caller later; until then a rejection must not count as unhandled.
  unlocked.catch(() => undefined);
  return { unlocked };
}

/** HAUL_LOCK_WAIT (as for the daemon: "90", "5m", "1h"): how long a command waits for a lock held elsewhere; none by default. */
function lockWaitMs(): number {
  const text = process.env['HAUL_LOCK_WAIT'];
  return text ? parseDuration(text, 'HAUL_LOCK_WAIT') : 0;
}

/** Prints for people, or one JSON document with --json. */
export function output(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : human());
}

/** Opens the database (bringing it up to date first), runs `work`, and closes it again. */
export async function withDatabase<T>(cmd: Command, work: (db: Database) => Promise<T>): Promise<T> {
  // Loaded here, not above: commands that never open the database (and `haul backup` until its
  // key unlock is under way) do not pay for loading it.
  const { openDatabase } = await import('../database/open-database.js');
  const db = await openDatabase({ stateDir: stateDirectory(globalOptions(cmd)) });
  try {
    const imported = db.legacyImport;
    if (imported) {
      const kept = imported.alreadyPresent.length ? `; the database already had ${imported.alreadyPresent.join(', ')} and kept its own rows` : '';
      process.stderr.write(`haul: imported ${imported.imported.length} client(s) from ${imported.file} into the database ${db.location.display}${kept}. The file is now ${imported.renamedTo} and is no longer read.\n`);
    }
    return await work(db);
  } finally {
    await db.close();
  }
}

/**
 * Lists a snapshot that is already durable in the repository. A database that fails here must
 * not fail the backup: the snapshot is safe, and `haul db rebuild` lists it later.
 */
export async function recordSnapshotOrWarn(cmd: Command, id: string, snapshot: Snapshot, open?: { db: Database; clientId: number }): Promise<void> {
  try {
    const { recordSnapshot } = await import('../database/snapshot-listing.js');
    if (open) await recordSnapshot(open.db.prisma, id, snapshot, open.clientId);
    else await withDatabase(cmd, (db) => recordSnapshot(db.prisma, id, snapshot));
  } catch (err) {
    const why = err instanceof HaulError ? err.message : (err as Error).message;
    process.stderr.write(`haul: warning: snapshot ${shortId(id)} is saved in the repository, but the database could not list it (${why}). Once the database works, \`haul db rebuild\` lists it.\n`);
  }
}
