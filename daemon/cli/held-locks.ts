// Repository locks a command holds until it ends. Kept apart from context.ts so that main.ts,
// which releases them, does not load the repository code for commands that never open one.
import type { RepositoryLock } from '../repository/lock.js';

const held: RepositoryLock[] = [];

export function holdLock(lock: RepositoryLock): void {
  held.push(lock);
}

/** Called once the command is over, whatever its outcome. */
export async function releaseLocks(): Promise<void> {
  await Promise.all(held.splice(0).map((l) => l.release()));
}
