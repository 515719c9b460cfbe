import type { Command } from 'commander';
import { displayBytes } from '../../../shared/display.js';
import { HaulError } from '../../../shared/errors.js';
import { openRepository, output } from '../context.js';
import { resolvePath } from '../../restorer/restorer.js';
import { nameBytes, targetBytes, type TreeNode } from '../../repository/tree.js';
import type { Repository } from '../../repository/repository.js';

interface Entry {
  path: string;
  type: TreeNode['type'];
  mode: number;
  size?: number;
  mtime: string;
  target?: string;
}

export function splitSnapshotRef(ref: string): { snapshot: string; path: string } {
  const i = ref.indexOf(':');
  return i < 0 ? { snapshot: ref, path: '/' } : { snapshot: ref.slice(0, i), path: ref.slice(i + 1) || '/' };
}

/** Display form of a stored name: control characters escaped so a name cannot forge output lines. */
export function displayName(node: TreeNode): string {
  return displayBytes(nameBytes(node));
}

async function walk(repo: Repository, prefix: string, nodes: TreeNode[], recursive: boolean, out: Entry[]): Promise<void> {
  for (const n of nodes) {
    const path = `${prefix}/${displayName(n)}`;
    out.push({ path, type: n.type, mode: n.mode, ...(n.size !== undefined ? { size: n.size } : {}), mtime: new Date(Number(BigInt(n.mtime) / 1_000_000n)).toISOString(), ...(n.type === 'symlink' ? { target: displayBytes(targetBytes(n)) } : {}) });
    if (recursive && n.type === 'dir') await walk(repo, path, (await repo.loadTree(n.subtree!)).nodes, true, out);
  }
}

export function registerLs(program: Command): void {
  program
    .command('ls <snapshot[:path]>')
    .description('list the files of a snapshot (ID prefix or "latest"), optionally below a path')
    .option('--client <name>', 'with "latest": the latest snapshot of this client')
    .option('-r, --recursive', 'descend into directories')
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, opts: { client?: string; recursive?: boolean; json?: boolean }, cmd: Command) => {
      const repo = await openRepository(cmd, { kind: 'shared', purpose: 'ls' });
      const { snapshot, path } = splitSnapshotRef(ref);
      const snap = await repo.findSnapshot(snapshot, opts.client);
      const found = await resolvePath(repo, snap, path);
      const base = path.replace(/\/+$/, '');
      const entries: Entry[] = [];
      if (found.node) await walk(repo, base.slice(0, base.lastIndexOf('/')), [found.node], false, entries);
      else if (found.tree) await walk(repo, base, found.tree.nodes, Boolean(opts.recursive), entries);
      else throw new HaulError('PathNotFound', `${path} not found`);
      output(opts.json, entries, () =>
        entries.map((e) => `${e.type.padEnd(7)} ${e.mode.toString(8).padStart(4, '0')} ${String(e.size ?? '').padStart(12)} ${e.mtime} ${e.path}${e.target !== undefined ? ` -> ${e.target}` : ''}`).join('\n') + (entries.length ? '\n' : ''));
    });
}
