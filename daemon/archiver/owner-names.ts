// uid/gid -> name, read once from /etc/passwd and /etc/group. Names are informational: restore
// uses the numeric IDs.
import { readFileSync } from 'node:fs';

function parse(file: string): Map<number, string> {
  const map = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id && /^\d+$/.test(id) && !map.has(Number(id))) map.set(Number(id), name);
    }
  } catch {
    // No such file (minimal containers): names stay unknown.
  }
  return map;
}

export class OwnerNames {
  private users: Map<number, string> | undefined;
  private groups: Map<number, string> | undefined;

  user(uid: number): string | undefined {
    this.users ??= parse('/etc/passwd');
    return this.users.get(uid);
  }

  group(gid: number): string | undefined {
    this.groups ??= parse('/etc/group');
    return this.groups.get(gid);
  }
}
