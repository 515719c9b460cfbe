// `haul forget`: removes snapshots, by retention policy (per client) or by ID. Only the small
// snapshot objects go; the data they alone referenced stays until `haul prune`.
import { HaulError } from '../../shared/errors.js';
import { lockRepository } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';
import type { StoredSnapshot } from '../repository/snapshot.js';
import { applyRetention, type RetentionDecision, type RetentionPolicy } from './retention-policy.js';

export interface ForgetOptions {
  /** Only this client's snapshots (default: every client, each with the same policy). */
  client?: string;
  policy?: RetentionPolicy;
  /** Snapshot ID prefixes to forget regardless of any policy. */
  ids?: string[];
  dryRun?: boolean;
}

export interface ForgetResult {
  dryRun: boolean;
  /** Per client, newest first: every snapshot considered and why it stays or goes. */
  decisions: RetentionDecision<StoredSnapshot>[];
  removed: string[];
}

export async function forgetSnapshots(repo: Repository, options: ForgetOptions): Promise<ForgetResult> {
  if (!options.policy && !options.ids?.length) {
    throw new HaulError('InvalidArgument', 'nothing to forget: give snapshot IDs, or a retention policy (e.g. --keep-daily 7 --keep-weekly 4).');
  }
  const lock = await lockRepository(repo, 'shared', { purpose: 'forget' });
  try {
    const all = await repo.listSnapshots(options.client === undefined ? {} : { client: options.client });
    const decisions: RetentionDecision<StoredSnapshot>[] = [];
    if (options.ids?.length) {
      for (const prefix of options.ids) {
        const snap = await repo.findSnapshot(prefix, options.client);
        decisions.push({ snapshot: snap, keep: false, reasons: ['named'] });
      }
    }
    if (options.policy) {
      const named = new Set(decisions.map((d) => d.snapshot.id));
      const byClient = new Map<string, StoredSnapshot[]>();
      for (const s of all) {
        if (named.has(s.id)) continue;
        byClient.set(s.client, [...(byClient.get(s.client) ?? []), s]);
      }
      for (const client of [...byClient.keys()].sort()) decisions.push(...applyRetention(byClient.get(client)!, options.policy));
    }
    const removed: string[] = [];
    if (!options.dryRun) {
      for (const d of decisions) {
        if (d.keep) continue;
        await repo.storage.delete('snapshots', d.snapshot.id);
        removed.push(d.snapshot.id);
      }
    }
    return { dryRun: !!options.dryRun, decisions, removed };
  } finally {
    await lock.release();
  }
}
