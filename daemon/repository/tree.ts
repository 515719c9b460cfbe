// Trees describe one directory each and are stored as blobs, so an unchanged directory is stored
// once however many snapshots contain it. The encoding is JSON with a fixed key order and nodes
// sorted by the raw bytes of their names, so equal directories give equal bytes.
import { HaulError } from '../../shared/errors.js';

export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'chardev' | 'blockdev' | 'socket';
const nodeTypes = new Set<NodeType>(['file', 'dir', 'symlink', 'fifo', 'chardev', 'blockdev', 'socket']);

export interface TreeNode {
  /** The name as UTF-8 text when its bytes are valid UTF-8; otherwise a display form. */
  name: string;
  /** base64 of the raw name bytes, present only when they are not valid UTF-8. */
  nameRaw?: string;
  type: NodeType;
  /** Permission bits, including setuid, setgid and sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  user?: string;
  group?: string;
  /** Nanoseconds since the epoch, as decimal strings (beyond 2^53). */
  mtime: string;
  ctime: string;
  size?: number;
  /** Identity for hard links, recorded only when the link count is above one. */
  inode?: string;
  device?: string;
  links?: number;
  target?: string;
  targetRaw?: string;
  rdev?: number;
  /** Data blob IDs (hex), in file order. */
  content?: string[];
  /**
   * base64 of one u64 (LE) per chunk of `content`: the chunk fingerprints a pull backup sends
   * the client's probe next time as "chunks the server has from you" (docs/probe-protocol.md).
   */
  fingerprints?: string;
  /** Tree blob ID (hex) of a directory. */
  subtree?: string;
}

export interface Tree {
  nodes: TreeNode[];
}

const maxNameBytes = 4096;
const maxTargetBytes = 65536;

export function isValidUtf8(bytes: Buffer): boolean {
  return Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes);
}

/** Splits raw bytes into the text + optional raw form stored in trees. */
export function encodeBytes(bytes: Buffer): { text: string; raw?: string } {
  if (isValidUtf8(bytes)) return { text: bytes.toString('utf8') };
  return { text: bytes.toString('utf8'), raw: bytes.toString('base64') };
}

export function nameBytes(node: TreeNode): Buffer {
  return node.nameRaw !== undefined ? Buffer.from(node.nameRaw, 'base64') : Buffer.from(node.name, 'utf8');
}

export function targetBytes(node: TreeNode): Buffer {
  return node.targetRaw !== undefined ? Buffer.from(node.targetRaw, 'base64') : Buffer.from(node.target ?? '', 'utf8');
}

/** Canonical key order; undefined fields are left out. */
const keyOrder: (keyof TreeNode)[] = ['name', 'nameRaw', 'type', 'mode', 'uid', 'gid', 'user', 'group', 'mtime', 'ctime', 'size', 'inode', 'device', 'links', 'target', 'targetRaw', 'rdev', 'content', 'fingerprints', 'subtree'];

export function encodeTree(tree: Tree): Buffer {
  // Each name's bytes are computed once, not once per comparison.
  const keyed = tree.nodes.map((n) => ({ n, name: nameBytes(n) }));
  keyed.sort((a, b) => Buffer.compare(a.name, b.name));
  const ordered = keyed.map(({ n }) => {
    const o: Record<string, unknown> = {};
    for (const k of keyOrder) if (n[k] !== undefined) o[k] = n[k];
    return o;
  });
  return Buffer.from(JSON.stringify({ nodes: ordered }), 'utf8');
}

function isSafeTarget(target: Buffer): boolean {
  return target.length > 0 && target.length <= maxTargetBytes && !target.includes(0);
}

/**
 * Parses and validates a tree. Names that could step out of a restore target ('.', '..', '/',
 * NUL, empty) are refused here, once, so no later code has to trust them.
 */
export function decodeTree(data: Buffer, what: string): Tree {
  const fail = (why: string) => new HaulError('ObjectCorrupt', `${what} is not a valid tree: ${why}. Run \`haul check\` for the affected snapshots.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch {
    throw fail('not JSON');
  }
  const nodes = (parsed as Tree | null)?.nodes;
  if (!Array.isArray(nodes)) throw fail('no node list');
  const seen = new Set<string>();
  for (const n of nodes as TreeNode[]) {
    if (typeof n !== 'object' || n === null || typeof n.name !== 'string' || !nodeTypes.has(n.type)) throw fail('malformed node');
    const name = nameBytes(n);
    if (name.length === 0 || name.length > maxNameBytes || name.includes(0x2f) || name.includes(0) || name.equals(Buffer.from('.')) || name.equals(Buffer.from('..'))) {
      throw fail(`unsafe name ${JSON.stringify(n.name)}`);
    }
    const key = name.toString('latin1');
    if (seen.has(key)) throw fail(`duplicate name ${JSON.stringify(n.name)}`);
    seen.add(key);
    if (!Number.isInteger(n.mode) || !Number.isInteger(n.uid) || !Number.isInteger(n.gid)) throw fail(`bad metadata for ${JSON.stringify(n.name)}`);
    if (!/^-?\d+$/.test(n.mtime) || !/^-?\d+$/.test(n.ctime)) throw fail(`bad times for ${JSON.stringify(n.name)}`);
    if (n.type === 'file' && (!Array.isArray(n.content) || !Number.isSafeInteger(n.size) || n.content.some((c) => typeof c !== 'string' || !/^[0-9a-f]{64}$/.test(c)))) throw fail(`bad content list for ${JSON.stringify(n.name)}`);
    if (n.fingerprints !== undefined && (typeof n.fingerprints !== 'string' || Buffer.from(n.fingerprints, 'base64').length !== 8 * (n.content?.length ?? -1))) throw fail(`bad fingerprints for ${JSON.stringify(n.name)}`);
    if (n.type === 'dir' && (typeof n.subtree !== 'string' || !/^[0-9a-f]{64}$/.test(n.subtree))) throw fail(`bad subtree for ${JSON.stringify(n.name)}`);
    if (n.type === 'symlink' && !isSafeTarget(targetBytes(n))) throw fail(`bad symlink target for ${JSON.stringify(n.name)}`);
  }
  return { nodes: nodes as TreeNode[] };
}
