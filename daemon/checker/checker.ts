// `haul check`: is every snapshot restorable? Structure: index files open, packs exist and their
// headers agree with the index, snapshots and trees decrypt, every referenced chunk is indexed.
// With readData: every pack is read whole, its keyed name re-verified, and every blob decrypted,
// decompressed and re-hashed. Each damaged object is reported with the snapshots and files it hurts.
import { displayBytes } from '../../shared/display.js';
import { HaulError } from '../../shared/errors.js';
import type { PackEntry } from '../repository/blob.js';
import { verifyObjectName } from '../repository/crypto.js';
import { decodeEntry } from '../repository/index-file.js';
import { readPackHeader } from '../repository/index-repair.js';
import { packCipher, packPreambleLength, parsePackHeader } from '../repository/pack.js';
import type { Repository } from '../repository/repository.js';
import { shortId, type StoredSnapshot } from '../repository/snapshot.js';
import { nameBytes } from '../repository/tree.js';

export interface CheckProblem {
  severity: 'error' | 'warning';
  message: string;
}

export interface CheckProgress {
  phase: 'index' | 'packs' | 'snapshots';
  done: number;
  total: number;
}

export interface CheckOptions {
  readData?: boolean;
  /**
   * With readData: read only the packs of part `part` (1-based) of `of` (packs are assigned to
   * parts by their name), so verifying part d of 7 on day d re-reads every byte each week.
   */
  readDataSubset?: { part: number; of: number };
  onProgress?: (p: CheckProgress) => void;
}

export interface CheckReport {
  problems: CheckProblem[];
  errors: number;
  warnings: number;
  indexFiles: number;
  packs: number;
  blobs: number;
  snapshots: number;
  trees: number;
  bytesRead: number;
}

interface DamagedFile {
  path: string;
  reason: string;
}

function inSubset(pack: string, subset: CheckOptions['readDataSubset']): boolean {
  return !subset || parseInt(pack.slice(0, 8), 16) % subset.of === subset.part - 1;
}

export async function checkRepository(repo: Repository, options: CheckOptions = {}): Promise<CheckReport> {
  const report: CheckReport = { problems: [], errors: 0, warnings: 0, indexFiles: 0, packs: 0, blobs: 0, snapshots: 0, trees: 0, bytesRead: 0 };
  const error = (message: string) => {
    report.problems.push({ severity: 'error', message });
    report.errors++;
  };
  const warning = (message: string) => {
    report.problems.push({ severity: 'warning', message });
    report.warnings++;
  };

  // 1. Index files.
  options.onProgress?.({ phase: 'index', done: 0, total: 1 });
  const indexByPack = new Map<string, PackEntry[]>();
  await repo.loadIndex(
    (file, err) => {
      error(`index file ${file} cannot be read: ${(err as Error).message.split('. Run')[0]}. Run \`haul repair index\` to rebuild the index from the packs.`);
    },
    (_file, record) => {
      // A pack may be listed by several index files; a loop, as a spread of a pack's 200,000
      // entries overflows the call stack.
      const list = indexByPack.get(record.name) ?? [];
      for (let i = 0; i < record.count; i++) list.push(decodeEntry(record.entries, i));
      indexByPack.set(record.name, list);
    },
  );
  for await (const _ of repo.storage.list('index')) report.indexFiles++;

  // 2. Packs: existence, headers against the index, and with readData every byte.
  const stored = new Map<string, number>();
  for await (const p of repo.storage.list('packs')) stored.set(p.name, p.size);
  const damagedBlobs = new Map<string, string>();
  const packNames = [...new Set([...indexByPack.keys(), ...stored.keys()])].sort();
  let done = 0;
  for (const pack of packNames) {
    options.onProgress?.({ phase: 'packs', done: done++, total: packNames.length });
    const size = stored.get(pack);
    const listed = indexByPack.get(pack);
    if (size === undefined) {
      error(`pack ${pack} is listed in the index but missing from storage (${listed!.length} blobs lost).`);
      for (const e of listed!) damagedBlobs.set(e.id.toString('hex'), `lost: its pack ${pack} is missing`);
      continue;
    }
    report.packs++;
    if (!listed) {
      warning(`pack ${pack} is in no index file: left by an interrupted backup. \`haul repair index\` indexes it; pruning will remove it if nothing uses it.`);
      continue;
    }
    try {
      const whole = options.readData && inSubset(pack, options.readDataSubset) ? await repo.storage.read('packs', pack) : undefined;
      if (whole) {
        report.bytesRead += whole.length;
        if (!verifyObjectName(repo.keys, pack, [whole])) error(`pack ${pack} does not match its name: its bytes were changed on disk.`);
      }
      const preamble = whole ? whole.subarray(0, packPreambleLength) : undefined;
      const header = whole && preamble ? parsePackHeader(repo.keys, pack, preamble, whole, size) : await readPackHeader(repo, pack, size);
      const byOffset = new Map(header.map((e) => [e.offset, e]));
      for (const e of listed) {
        const h = byOffset.get(e.offset);
        if (!h || !h.id.equals(e.id) || h.length !== e.length || h.type !== e.type || h.compression !== e.compression) {
          error(`the index entry for blob ${e.id.toString('hex').slice(0, 16)} does not match pack ${pack}'s header. Run \`haul repair index\`.`);
        }
      }
      if (whole) {
        const cipher = packCipher(repo.keys, preamble!);
        for (const e of header) {
          report.blobs++;
          try {
            repo.openBlob(e.id, { pack, offset: e.offset, type: e.type, compression: e.compression }, cipher, whole.subarray(e.offset, e.offset + e.length));
          } catch (err) {
            damagedBlobs.set(e.id.toString('hex'), `damaged in pack ${pack}`);
            error(`pack ${pack}: ${(err as Error).message.split('. Run')[0]}.`);
          }
        }
      }
    } catch (err) {
      error(`pack ${pack} cannot be read: ${(err as Error).message.split('. Run')[0]}.`);
      for (const e of listed) damagedBlobs.set(e.id.toString('hex'), `lost: its pack ${pack} is unreadable`);
    }
  }

  // 3. Snapshots and trees; each damaged chunk is traced to the files that use it.
  const snapshotNames: string[] = [];
  for await (const s of repo.storage.list('snapshots')) snapshotNames.push(s.name);
  const treeMemo = new Map<string, Promise<DamagedFile[]>>();
  const scanTree = (id: string): Promise<DamagedFile[]> => {
    let p = treeMemo.get(id);
    if (!p) {
      p = scanTreeUncached(id);
      treeMemo.set(id, p);
    }
    return p;
  };
  const scanTreeUncached = async (id: string): Promise<DamagedFile[]> => {
    report.trees++;
    const damage = damagedBlobs.get(id);
    if (damage) return [{ path: '', reason: `directory listing ${damage}` }];
    let tree;
    try {
      tree = await repo.loadTree(id);
    } catch (err) {
      return [{ path: '', reason: `directory listing unreadable: ${(err as Error).message.split('. Run')[0]}` }];
    }
    const out: DamagedFile[] = [];
    for (const node of tree.nodes) {
      const name = displayBytes(nameBytes(node));
      if (node.type === 'dir') {
        for (const d of await scanTree(node.subtree!)) out.push({ path: d.path ? `${name}/${d.path}` : name, reason: d.reason });
      } else if (node.type === 'file') {
        for (const c of node.content!) {
          const why = damagedBlobs.get(c) ?? (repo.index.has(Buffer.from(c, 'hex')) ? undefined : 'is not in the index');
          if (why) {
            out.push({ path: name, reason: `chunk ${c.slice(0, 16)} ${why}` });
            break;
          }
        }
      }
    }
    return out;
  };
  done = 0;
  for (const name of snapshotNames) {
    options.onProgress?.({ phase: 'snapshots', done: done++, total: snapshotNames.length });
    let snap: StoredSnapshot;
    try {
      snap = await repo.readSnapshot(name);
    } catch (err) {
      error(`snapshot ${shortId(name)} cannot be read: ${(err as Error).message}`);
      continue;
    }
    report.snapshots++;
    for (const d of await scanTree(snap.tree)) {
      error(`snapshot ${shortId(snap.id)} (client ${snap.client}): /${d.path}: ${d.reason}.`);
    }
  }
  return report;
}

/** "k/n", or "day/n": part (days since the epoch mod n) + 1, so consecutive days cover every part. */
export function parseSubset(text: string, now = new Date()): { part: number; of: number } {
  const m = /^(\d+|day)\/(\d+)$/.exec(text);
  const of = m ? Number(m[2]) : 0;
  const part = m ? (m[1] === 'day' ? (Math.floor(now.getTime() / 86_400_000) % of) + 1 : Number(m[1])) : 0;
  if (!m || of < 1 || part < 1 || part > of) throw new HaulError('InvalidArgument', `--read-data-subset takes k/n with 1 <= k <= n (e.g. 2/7), or day/n, not ${JSON.stringify(text)}.`);
  return { part, of };
}
