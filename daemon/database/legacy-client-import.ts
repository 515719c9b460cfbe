// Earlier Haul kept its clients in $HAUL_HOME/clients.json. The first time a newer Haul opens the
// database it imports that file (addresses, paths, excludes, pinned host keys) and renames it
// clients.json.imported, so nothing an operator set up is lost and the file is never read twice.
// Every entry is checked before the first one is written: a bad file imports nothing and stays.
// A client the database already has keeps its row (a crash between import and rename, or a
// second process importing at the same moment, then imports nothing twice).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HaulError } from '../../shared/errors.js';
import { checkClientSettings, checkHostKey, type ClientSettings } from '../clients/client-config.js';
import { ClientStore } from './client-store.js';
import type { PrismaClient } from './open-database.js';

export const LEGACY_CLIENT_FILE = 'clients.json';

export interface LegacyImportResult {
  file: string;
  renamedTo: string;
  imported: string[];
  /** Names the database had already; their rows were left as they were. */
  alreadyPresent: string[];
}

interface LegacyEntry {
  settings: ClientSettings;
  hostKey?: string;
  created?: Date;
}

function readEntries(file: string, text: string): LegacyEntry[] {
  const refuse = (why: string) => new HaulError('UnsupportedFormat', `cannot import the client list ${file} into the database: ${why}. Nothing was imported and the file is unchanged; correct it (or move it away if those clients are no longer wanted), then run the command again.`);
  let parsed: { format?: unknown; clients?: unknown };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    throw refuse('it is not valid JSON');
  }
  if (parsed?.format !== 'haul-clients-v1' || !Array.isArray(parsed.clients)) throw refuse('it is not a haul-clients-v1 file');
  return parsed.clients.map((raw: Record<string, unknown>, i: number) => {
    const label = `entry ${i + 1}${typeof raw?.['name'] === 'string' ? ` (${JSON.stringify(raw['name'])})` : ''}`;
    const str = (k: string) => (typeof raw?.[k] === 'string' ? (raw[k] as string) : undefined);
    const list = (k: string) => (Array.isArray(raw?.[k]) && (raw[k] as unknown[]).every((v) => typeof v === 'string') ? (raw[k] as string[]) : undefined);
    const name = str('name');
    const host = str('host');
    const user = str('user');
    const paths = list('paths');
    const excludes = list('excludes') ?? [];
    const port = raw?.['port'];
    if (name === undefined || host === undefined || user === undefined || paths === undefined || typeof port !== 'number') {
      throw refuse(`${label} lacks one of name, host, port, user, paths`);
    }
    try {
      const settings = checkClientSettings({
        name, host, port, user, paths, excludes,
        oneFileSystem: raw['oneFileSystem'] === true,
        // Schedules and retention did not exist before the database.
        schedule: null,
        retention: null,
        enabled: true,
      });
      const hostKey = str('hostKey');
      if (hostKey !== undefined) checkHostKey(hostKey, name);
      const created = str('created') === undefined ? undefined : new Date(str('created')!);
      return {
        settings,
        ...(hostKey === undefined ? {} : { hostKey }),
        ...(created === undefined || Number.isNaN(created.getTime()) ? {} : { created }),
      };
    } catch (err) {
      throw refuse(`${label}: ${(err as Error).message.replace(/\.$/, '')}`);
    }
  });
}

/** A name next to `file` that does not exist yet: clients.json.imported, else .imported-2, … */
function freeName(file: string): string {
  for (let n = 1; ; n++) {
    const candidate = `${file}.imported${n === 1 ? '' : `-${n}`}`;
    if (!fs.existsSync(candidate)) return candidate;
  }
}

export async function importLegacyClientList(prisma: PrismaClient, stateDir: string): Promise<LegacyImportResult | undefined> {
  const file = path.join(stateDir, LEGACY_CLIENT_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new HaulError('StorageFailure', `cannot read the client list ${file} to import it into the database: ${(err as Error).message}. Make it readable, or move it away if those clients are no longer wanted.`, { cause: err });
  }
  const entries = readEntries(file, text);
  const store = new ClientStore(prisma);
  const result: LegacyImportResult = { file, renamedTo: '', imported: [], alreadyPresent: [] };
  for (const entry of entries) {
    if (await store.find(entry.settings.name)) {
      result.alreadyPresent.push(entry.settings.name);
      continue;
    }
    try {
      await store.add(entry.settings, { ...(entry.hostKey ? { hostKey: entry.hostKey } : {}), ...(entry.created ? { created: entry.created } : {}) });
      result.imported.push(entry.settings.name);
    } catch (err) {
      // Another process imported the same file at the same moment.
      if (!(await store.find(entry.settings.name))) throw err;
      result.alreadyPresent.push(entry.settings.name);
    }
  }
  result.renamedTo = freeName(file);
  try {
    fs.renameSync(file, result.renamedTo);
  } catch (err) {
    // The other importing process renamed it first.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const dir = fs.openSync(stateDir, 'r');
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
  return result;
}
