// What every command needs: where the repository is and how to open it.
import type { Command } from 'commander';
import { HaulError } from '../../shared/errors.js';
import { LocalStorage } from '../storage/local.js';
import { Repository } from '../repository/repository.js';
import { repositoryPassphrase } from './passphrase.js';

export interface GlobalOptions {
  home?: string;
  repo?: string;
  passwordFile?: string;
  quiet?: boolean;
}

export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** The server's state directory: its SSH identity and the client list. */
export function stateDirectory(opts: GlobalOptions): string {
  return opts.home ?? process.env['HAUL_HOME'] ?? '/var/lib/haul';
}

export function repositoryLocation(opts: GlobalOptions): LocalStorage {
  const repo = opts.repo ?? process.env['HAUL_REPOSITORY'];
  if (!repo) throw new HaulError('InvalidArgument', 'no repository given. Pass --repo DIR or set HAUL_REPOSITORY.');
  return new LocalStorage(repo);
}

export async function openRepository(cmd: Command): Promise<Repository> {
  const opts = globalOptions(cmd);
  const storage = repositoryLocation(opts);
  if (!(await storage.isInitialised())) {
    throw new HaulError('RepositoryNotFound', `there is no Haul repository at ${storage.location}. Check --repo (or HAUL_REPOSITORY), or create one with \`haul init\`.`);
  }
  return Repository.open(storage, await repositoryPassphrase(opts));
}

/** Prints for people, or one JSON document with --json. */
export function output(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : human());
}
