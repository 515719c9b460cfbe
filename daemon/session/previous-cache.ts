// The cached digest of a client's latest snapshot (docs/probe-protocol.md, "The previous-snapshot
// cache"): after a backup the server writes the PREVIOUS records, the KNOWN fingerprints and where
// each record's entry lives to one file per client in its state directory, so the next backup
// sends them without reading the snapshot's trees. It is an optimisation only: a missing, damaged,
// forged or outdated file is ignored (with a log line) and the trees are walked as before.
//
// Trust: the file is sealed (AES-GCM) like the repository's own objects, so only this
// repository's server can have written it, and whoever reads the state directory learns nothing of
// the client's names from it; it names the snapshot it describes, and is used only
// when that snapshot is still the client's latest; and every chunk and tree it names is checked
// against the repository's index before anything is offered, so after a prune (or any loss) no
// chunk the repository no longer has reaches the probe. The probe's claims are then checked
// against the digest exactly as against one built from the trees.
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { openObject, sealObject, type MasterKeys } from '../repository/crypto.js';
import type { Repository } from '../repository/repository.js';
import type { TreeNode } from '../repository/tree.js';
import { aligned, littleEndian, PreviousDigest, type DigestDir, type DigestTree } from './previous-records.js';

const magic = Buffer.from('HAULPDC1');
/** A sealed object's header (daemon/repository/crypto.ts): magic, salt, then AES-GCM with its tag. */
const sealedOverhead = 8 + 32 + 16;

function cacheKey(keys: MasterKeys): Buffer {
  return Buffer.from(hkdfSync('sha256', keys.mac, Buffer.alloc(0), 'haul-previous-digest-v1', 32));
}

/** The cache's place in the server's state directory. */
export function previousCacheDirectory(stateDir: string): string {
  return path.join(stateDir, 'cache', 'previous');
}

/** One file per client and repository; the name says neither (a keyed hash of the client's name). */
export function previousCachePath(dir: string, keys: MasterKeys, client: string): string {
  const name = createHmac('sha256', cacheKey(keys)).update('client:').update(client, 'utf8').digest('hex').slice(0, 32);
  return path.join(dir, `${name}.digest`);
}

interface Header {
  snapshot: string;
  client: string;
  trees: [string, string][];
  dirs: [string, TreeNode, number, number, number][];
  records: number;
  chunks: number;
  known: number;
}

/**
 * Sealed like the repository's own objects (AES-GCM under the repository's keys): magic · u32
 * header length · header (JSON) · records · refs · chunk IDs · fingerprints · known.
 */
export function encodePreviousCache(keys: MasterKeys, client: string, snapshot: string, digest: PreviousDigest): Buffer {
  const { records, refs, trees, dirs, chunkIds, chunkFingerprints, known } = digest.parts;
  const header: Header = {
    snapshot,
    client,
    trees: trees.map((t) => [t.id, t.path.toString('base64')]),
    dirs: dirs.map((d) => [d.path.toString('base64'), d.node, d.totals.files, d.totals.dirs, d.totals.bytes]),
    records: records.length / 16,
    chunks: chunkIds.length / 32,
    known: known.length,
  };
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  const refBytes = Buffer.from(littleEndian(refs).buffer);
  const knownBytes = Buffer.from(littleEndian(known).buffer);
  return sealObject(keys, Buffer.concat([magic, length, json, records, refBytes, chunkIds, chunkFingerprints, knownBytes]));
}

/** Why a cache file was not used, in words for the job log. */
export class CacheRejected extends Error {}

export function decodePreviousCache(keys: MasterKeys, data: Buffer, client: string, snapshot: string): PreviousDigest {
  if (data.length < sealedOverhead) throw new CacheRejected('it is not a digest file (truncated or of another format)');
  let body: Buffer;
  try {
    body = openObject(keys, data, 'the cached digest');
  } catch {
    throw new CacheRejected('it does not open with the repository\'s keys (changed, truncated, or written for another repository)');
  }
  // Authenticated: from here on the bytes are this server's own, so only their binding is checked.
  if (body.length < magic.length + 4 || !body.subarray(0, magic.length).equals(magic)) throw new CacheRejected('it is not a digest file (truncated or of another format)');
  let at = magic.length;
  const jsonLength = body.readUInt32LE(at);
  at += 4;
  const header = JSON.parse(body.toString('utf8', at, at + jsonLength)) as Header;
  at += jsonLength;
  if (header.client !== client) throw new CacheRejected(`it describes client ${JSON.stringify(header.client)}`);
  if (header.snapshot !== snapshot) throw new CacheRejected(`it describes snapshot ${header.snapshot.slice(0, 8)}, not the latest one (${snapshot.slice(0, 8)})`);
  const take = (n: number) => {
    const part = body.subarray(at, at + n);
    at += n;
    return part;
  };
  const records = take(header.records * 16);
  const refBytes = take(header.records * 16);
  const refs = littleEndian(new Uint32Array(aligned(refBytes)));
  const chunkIds = take(header.chunks * 32);
  const chunkFingerprints = take(header.chunks * 8);
  const knownBytes = take(header.known * 8);
  if (at !== body.length) throw new CacheRejected('its sections do not add up');
  const known = littleEndian(new BigUint64Array(aligned(knownBytes)));
  const trees: DigestTree[] = header.trees.map(([id, p]) => ({ id, path: Buffer.from(p, 'base64') }));
  const dirs: DigestDir[] = header.dirs.map(([p, node, files, dirCount, bytes]) => ({ path: Buffer.from(p, 'base64'), node, totals: { files, dirs: dirCount, bytes } }));
  return new PreviousDigest({ records, refs, trees, dirs, chunkIds, chunkFingerprints, known });
}

/** Every chunk and tree the digest names is still in the repository's index; else what is missing. */
function missingFromRepository(repo: Repository, digest: PreviousDigest): string | undefined {
  const { chunkIds, trees, dirs } = digest.parts;
  let chunks = 0;
  for (let i = 0; i < chunkIds.length; i += 32) if (!repo.hasBlob(chunkIds.subarray(i, i + 32))) chunks++;
  const treeIds = [...trees.map((t) => t.id), ...dirs.map((d) => d.node.subtree!)];
  const missingTrees = treeIds.filter((id) => !repo.hasBlob(Buffer.from(id, 'hex'))).length;
  if (chunks === 0 && missingTrees === 0) return undefined;
  return `${chunks} chunk(s) and ${missingTrees} tree(s) it names are no longer in the repository (pruned or lost)`;
}

/**
 * The cached digest of `snapshot` for `client`, if there is a usable one; otherwise undefined,
 * after a log line saying why (no line when there is simply no file yet).
 */
export async function loadPreviousCache(repo: Repository, dir: string, client: string, snapshot: string, log: (line: string) => void): Promise<PreviousDigest | undefined> {
  const file = previousCachePath(dir, repo.keys, client);
  // The daemon writes a job's digest after the job has ended: the next backup waits for it.
  await pendingWrites.get(file);
  let data: Buffer;
  try {
    data = await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log(`the cached digest of the previous snapshot (${file}) cannot be read (${(err as Error).message}); reading the snapshot's trees instead`);
    return undefined;
  }
  try {
    const digest = decodePreviousCache(repo.keys, data, client, snapshot);
    const missing = missingFromRepository(repo, digest);
    if (missing) throw new CacheRejected(missing);
    return digest;
  } catch (err) {
    const why = err instanceof CacheRejected ? err.message : `it does not parse (${(err as Error).message})`;
    log(`the cached digest of the previous snapshot is not used: ${why}; reading the snapshot's trees instead`);
    return undefined;
  }
}

/** Cache files being written, by path: what a load of the same file waits for. */
const pendingWrites = new Map<string, Promise<void>>();

/**
 * Replaces the client's cache file (a new name, then a rename: a reader sees the old or the new
 * one). Writes of one file happen in the order asked, and a load in this process waits for them.
 * `build` makes the digest, called when the write's turn comes.
 */
export function savePreviousCache(keys: MasterKeys, dir: string, client: string, snapshot: string, build: () => Promise<PreviousDigest>): Promise<void> {
  const file = previousCachePath(dir, keys, client);
  // Built and sealed on a later turn of the event loop: what the caller does next (the daemon
  // publishing the job's end) is not held up by them. A load waits from this call on.
  const write = (pendingWrites.get(file) ?? Promise.resolve())
    .then(() => new Promise((resolve) => setImmediate(resolve)))
    .then(async () => writeCacheFile(file, dir, encodePreviousCache(keys, client, snapshot, await build())));
  const settled = write.then(
    () => undefined,
    () => undefined,
  );
  pendingWrites.set(file, settled);
  void settled.then(() => {
    if (pendingWrites.get(file) === settled) pendingWrites.delete(file);
  });
  return write;
}

/** Settles when every cache write started so far has ended (the daemon waits for them as it stops). */
export async function previousCacheWritesSettled(): Promise<void> {
  await Promise.all(pendingWrites.values());
}

async function writeCacheFile(file: string, dir: string, data: Buffer): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  try {
    await fs.writeFile(temp, data, { mode: 0o600 });
    await fs.rename(temp, file);
  } catch (err) {
    await fs.rm(temp, { force: true });
    throw err;
  }
}

export interface RemovedCaches {
  files: number;
  bytes: number;
}

/**
 * Deletes the cache files of clients that are no longer registered (and temporary files a crash
 * left), once they are older than `olderThan`: a file written meanwhile for a client added a
 * moment ago is young and stays. The names are keyed, so the files of the clients that remain
 * are recognised by computing their names; nothing else in the directory is touched.
 */
export async function removeOrphanedPreviousCaches(dir: string, keys: MasterKeys, clients: Iterable<string>, olderThan: Date): Promise<RemovedCaches> {
  const keep = new Set([...clients].map((c) => path.basename(previousCachePath(dir, keys, c))));
  const removed: RemovedCaches = { files: 0, bytes: 0 };
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return removed;
    throw err;
  }
  for (const name of names) {
    if (keep.has(name) || !/^[0-9a-f]{32}\.digest(\.[0-9a-f]{16}\.tmp)?$/.test(name)) continue;
    const file = path.join(dir, name);
    try {
      const st = await fs.lstat(file);
      if (!st.isFile() || st.mtime >= olderThan) continue;
      await fs.rm(file);
      removed.files++;
      removed.bytes += st.size;
    } catch (err) {
      // Gone already (another daemon's clean-up, a concurrent save's rename): nothing to do.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return removed;
}
