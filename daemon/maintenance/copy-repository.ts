// `haul repo copy`: copies a repository to another storage (local directory <-> S3 bucket),
// object for object, byte for byte. Nothing is decrypted or re-encoded, so the copy opens with the
// same passphrases and `haul check` finds the same content on both sides.
//
// The source is read under a shared lock (prune cannot delete anything meanwhile), and a backup
// that runs during the copy is harmless thanks to the order:
//   - listed first snapshots, then index files, then packs: whatever a listed snapshot needs was
//     indexed before it was written, and every indexed pack was written before its index file;
//   - written first keys, then packs, then index files, then snapshots, and the config last: the
//     target becomes a repository only when everything it refers to is there.
// An interrupted copy leaves a target without config; running the same copy again resumes it,
// skipping the objects already there. A target that is a finished copy of the same repository
// (the same config object) is brought up to date the same way: objects never change once
// written, so only new ones are copied. Nothing is deleted from the target.
import { HaulError } from '../../shared/errors.js';
import type { Repository } from '../repository/repository.js';
import type { ObjectKind, Storage } from '../storage/storage.js';

export interface CopyReport {
  from: string;
  to: string;
  objects: Record<'keys' | 'packs' | 'index' | 'snapshots' | 'config', number>;
  /** Objects already present in the target from an interrupted copy, not copied again. */
  skipped: number;
  bytesCopied: number;
  durationMs: number;
}

export type CopyProgress = (done: number, total: number, detail: string) => void;

/** Packs are large; a few in flight keep a slow link busy without holding much memory. */
const packsInFlight = 4;

async function listNames(storage: Storage, kind: ObjectKind): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of storage.list(kind)) out.set(o.name, o.size);
  return out;
}

/** Decides whether the target is empty, an earlier (maybe interrupted) copy of this source, or something else. */
async function prepareTarget(source: Repository, target: Storage): Promise<boolean> {
  if (await target.isInitialised()) {
    const same = (await target.read('config', 'config')).equals(await source.storage.read('config', 'config'));
    if (same) return true;
    throw new HaulError('RepositoryExists', `${target.location} already holds another repository. Copy to a new directory or bucket prefix.`);
  }
  try {
    await target.create();
    return false;
  } catch (err) {
    if (!(err instanceof HaulError && err.code === 'RepositoryExists')) throw err;
    // Key file names are random: a target holding one of the source's keys is an earlier copy.
    const sourceKeys = await listNames(source.storage, 'keys');
    for await (const k of target.list('keys')) if (sourceKeys.has(k.name)) return true;
    throw new HaulError('RepositoryExists', `${target.location} is not empty and is not an interrupted copy of ${source.storage.location}. Copy to a new directory or bucket prefix.`);
  }
}

export async function copyRepository(source: Repository, target: Storage, onProgress: CopyProgress = () => undefined): Promise<CopyReport> {
  const started = Date.now();
  const resuming = await prepareTarget(source, target);
  const snapshots = await listNames(source.storage, 'snapshots');
  const index = await listNames(source.storage, 'index');
  const packs = await listNames(source.storage, 'packs');
  const keys = await listNames(source.storage, 'keys');
  const report: CopyReport = { from: source.storage.location, to: target.location, objects: { keys: 0, packs: 0, index: 0, snapshots: 0, config: 0 }, skipped: 0, bytesCopied: 0, durationMs: 0 };
  const plan: [kind: 'keys' | 'packs' | 'index' | 'snapshots', names: Map<string, number>][] = [['keys', keys], ['packs', packs], ['index', index], ['snapshots', snapshots]];
  const total = keys.size + packs.size + index.size + snapshots.size + 1;
  let done = 0;

  const copyOne = async (kind: keyof CopyReport['objects'], name: string, size: number, present: Map<string, number>): Promise<void> => {
    if (present.get(name) === size) {
      report.skipped++;
    } else {
      const data = await source.storage.read(kind, name);
      await target.write(kind, name, data);
      report.bytesCopied += data.length;
    }
    report.objects[kind]++;
    onProgress(++done, total, `${kind}/${name.slice(0, 12)}`);
  };

  for (const [kind, names] of plan) {
    const present = resuming ? await listNames(target, kind) : new Map<string, number>();
    const pending = new Set<Promise<void>>();
    for (const [name, size] of names) {
      while (pending.size >= (kind === 'packs' ? packsInFlight : 1)) await Promise.race(pending);
      const p: Promise<void> = copyOne(kind, name, size, present).finally(() => pending.delete(p));
      // The first failure is thrown below; the others must not surface as unhandled rejections.
      p.catch(() => undefined);
      pending.add(p);
    }
    await Promise.all(pending);
  }
  await copyOne('config', 'config', -1, new Map());
  report.durationMs = Date.now() - started;
  return report;
}
