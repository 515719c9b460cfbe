// `haul dump`: a snapshot (or a path in it) as a POSIX tar stream (ustar blocks, with pax
// records for long names, big sizes, nanosecond mtimes and names that are not ASCII; names that
// are not UTF-8 go into the pax record as their raw bytes, which GNU tar extracts as such). Written
// here rather than with a tar library because stored names are raw bytes, which the libraries'
// string-based headers cannot carry. Every chunk is verified before it is written.
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { displayBytes } from '../../shared/display.js';
import { HaulError } from '../../shared/errors.js';
import { BlobType } from '../repository/blob.js';
import type { Repository } from '../repository/repository.js';
import type { StoredSnapshot } from '../repository/snapshot.js';
import { nameBytes, targetBytes, type Tree, type TreeNode } from '../repository/tree.js';
import { resolvePath } from './restorer.js';

const block = 512;

export interface DumpResult {
  entries: number;
  bytes: number;
}

function octal(value: number, width: number): Buffer {
  const text = value.toString(8).padStart(width - 1, '0');
  return Buffer.from(text.length > width - 1 ? '7'.repeat(width - 1) + '\0' : text + '\0', 'latin1');
}

/** One pax record: "<length> <key>=<value>\n", where length counts the whole record. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

interface HeaderFields {
  path: Buffer;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  link?: Buffer;
  user?: string;
  group?: string;
  devMajor?: number;
  devMinor?: number;
}

function ustar(h: HeaderFields, name: Buffer, link: Buffer, size: number, type: string): Buffer {
  const b = Buffer.alloc(block);
  name.copy(b, 0, 0, Math.min(100, name.length));
  octal(h.mode & 0o7777, 8).copy(b, 100);
  octal(Math.min(h.uid, 0o7777777), 8).copy(b, 108);
  octal(Math.min(h.gid, 0o7777777), 8).copy(b, 116);
  octal(size, 12).copy(b, 124);
  octal(Number(h.mtimeNs / 1_000_000_000n), 12).copy(b, 136);
  b.write('        ', 148, 'latin1');
  b.write(type, 156, 'latin1');
  link.copy(b, 157, 0, Math.min(100, link.length));
  b.write('ustar\0' + '00', 257, 'latin1');
  b.write((h.user ?? '').slice(0, 31), 265, 'utf8');
  b.write((h.group ?? '').slice(0, 31), 297, 'utf8');
  octal(h.devMajor ?? 0, 8).copy(b, 329);
  octal(h.devMinor ?? 0, 8).copy(b, 337);
  let sum = 0;
  for (const byte of b) sum += byte;
  Buffer.from(sum.toString(8).padStart(6, '0') + '\0 ', 'latin1').copy(b, 148);
  return b;
}

function headerBlocks(h: HeaderFields): Buffer[] {
  const records: Buffer[] = [];
  const link = h.link ?? Buffer.alloc(0);
  const ascii = (x: Buffer) => x.every((c) => c >= 0x20 && c < 0x7f);
  if (h.path.length > 100 || !ascii(h.path)) records.push(paxRecord('path', h.path));
  if (link.length > 100 || !ascii(link)) records.push(paxRecord('linkpath', link));
  if (h.size > 0o77777777777) records.push(paxRecord('size', Buffer.from(String(h.size))));
  if (h.uid > 0o7777777) records.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (h.gid > 0o7777777) records.push(paxRecord('gid', Buffer.from(String(h.gid))));
  const sec = h.mtimeNs / 1_000_000_000n;
  const ns = h.mtimeNs % 1_000_000_000n;
  if (ns !== 0n) records.push(paxRecord('mtime', Buffer.from(`${sec}.${ns.toString().padStart(9, '0')}`)));
  const out: Buffer[] = [];
  if (records.length > 0) {
    const data = Buffer.concat(records);
    out.push(ustar({ ...h, mode: 0o644 }, Buffer.from('PaxHeader'), Buffer.alloc(0), data.length, 'x'), data, Buffer.alloc((block - (data.length % block)) % block));
  }
  out.push(ustar(h, h.path, link, h.type === '0' ? h.size : 0, h.type));
  return out;
}

export class TarDump {
  private readonly result: DumpResult = { entries: 0, bytes: 0 };
  private readonly hardLinks = new Map<string, Buffer>();

  constructor(private readonly repo: Repository, private readonly out: Writable) {}

  private async write(buf: Buffer): Promise<void> {
    // A reader that has gone (a cancelled download) ends the dump instead of waiting for 'drain'.
    if (this.out.destroyed) throw new HaulError('StreamAborted', 'the reader of the tar stream has gone');
    if (!this.out.write(buf)) await once(this.out, 'drain');
  }

  async dump(snapshot: StoredSnapshot, subpath: string): Promise<DumpResult> {
    const found = await resolvePath(this.repo, snapshot, subpath);
    const parts = subpath.split('/').filter(Boolean);
    if (found.node) {
      await this.entry(Buffer.from(parts.at(-1)!), found.node);
    } else if (parts.length > 0) {
      // A directory is dumped under its own name, like `tar -C parent name`.
      const parentPath = '/' + parts.slice(0, -1).join('/');
      const parent = await resolvePath(this.repo, snapshot, parentPath);
      const node = parent.tree!.nodes.find((n) => nameBytes(n).equals(Buffer.from(parts.at(-1)!)))!;
      await this.entry(Buffer.from(parts.at(-1)!), node);
    } else {
      await this.tree(Buffer.alloc(0), found.tree!);
    }
    await this.write(Buffer.alloc(2 * block));
    return this.result;
  }

  private async tree(prefix: Buffer, tree: Tree): Promise<void> {
    for (const node of tree.nodes) {
      const name = nameBytes(node);
      await this.entry(prefix.length ? Buffer.concat([prefix, Buffer.from('/'), name]) : name, node);
    }
  }

  private async entry(path: Buffer, node: TreeNode): Promise<void> {
    const base = { mode: node.mode, uid: node.uid, gid: node.gid, mtimeNs: BigInt(node.mtime), ...(node.user ? { user: node.user } : {}), ...(node.group ? { group: node.group } : {}) };
    this.result.entries++;
    switch (node.type) {
      case 'dir': {
        for (const b of headerBlocks({ ...base, path: Buffer.concat([path, Buffer.from('/')]), type: '5', size: 0 })) await this.write(b);
        await this.tree(path, await this.repo.loadTree(node.subtree!));
        return;
      }
      case 'symlink':
        for (const b of headerBlocks({ ...base, path, type: '2', size: 0, link: targetBytes(node) })) await this.write(b);
        return;
      case 'fifo':
        for (const b of headerBlocks({ ...base, path, type: '6', size: 0 })) await this.write(b);
        return;
      case 'chardev':
      case 'blockdev': {
        const rdev = node.rdev ?? 0;
        for (const b of headerBlocks({ ...base, path, type: node.type === 'chardev' ? '3' : '4', size: 0, devMajor: (rdev >>> 8) & 0xfff, devMinor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) })) await this.write(b);
        return;
      }
      case 'socket':
        this.result.entries--;
        return;
      case 'file':
        break;
    }
    const linkKey = node.links && node.links > 1 && node.inode ? `${node.device}:${node.inode}` : undefined;
    const first = linkKey ? this.hardLinks.get(linkKey) : undefined;
    if (first) {
      for (const b of headerBlocks({ ...base, path, type: '1', size: 0, link: first })) await this.write(b);
      return;
    }
    if (linkKey) this.hardLinks.set(linkKey, path);
    for (const b of headerBlocks({ ...base, path, type: '0', size: node.size! })) await this.write(b);
    let written = 0;
    for (const id of node.content ?? []) {
      let chunk: Buffer;
      try {
        chunk = await this.repo.loadBlob(Buffer.from(id, 'hex'), BlobType.data);
      } catch (err) {
        // A tar stream cannot take back a header: stop here, so the archive is visibly cut.
        throw new HaulError('BlobCorrupt', `the dump stopped at ${displayBytes(path)}: ${(err as Error).message}`, { cause: err });
      }
      await this.write(chunk);
      written += chunk.length;
    }
    if (written !== node.size) throw new HaulError('BlobCorrupt', `the dump stopped at ${displayBytes(path)}: its chunks add up to ${written} bytes, the snapshot says ${node.size}.`);
    this.result.bytes += written;
    const pad = (block - (written % block)) % block;
    if (pad) await this.write(Buffer.alloc(pad));
  }
}
