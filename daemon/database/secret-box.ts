// Secrets the console must read back (TOTP secrets) are sealed with AES-256-GCM under a key kept
// in a file beside the database, not in it: a copy of the database alone (a dump, a backup of
// PostgreSQL) then reveals no second factor. The key file is created on first use, mode 600.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HaulError } from '../../shared/errors.js';

const PREFIX = 'v1:';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export const CONSOLE_KEY_FILE = 'console.key';

export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== KEY_BYTES) throw new HaulError('InvalidArgument', `the console key must be ${KEY_BYTES} bytes, not ${key.length}.`);
  }

  static random(): SecretBox {
    return new SecretBox(randomBytes(KEY_BYTES));
  }

  seal(text: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64');
  }

  /** The sealed text; a value without the prefix is returned as it is (written before sealing existed). */
  open(value: string): string {
    if (!SecretBox.isSealed(value)) return value;
    const raw = Buffer.from(value.slice(PREFIX.length), 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new HaulError('Internal', `a sealed secret in the database does not open with this console's key (${CONSOLE_KEY_FILE}): the key file was replaced or belongs to another installation. Restore the key file, or have an admin reset the affected second factors.`);
    }
  }

  static isSealed(value: string): boolean {
    return value.startsWith(PREFIX);
  }
}

/** The console's key from `<stateDir>/console.key`, created (mode 600) when missing. */
export function loadConsoleKey(stateDir: string): SecretBox {
  const file = path.join(stateDir, CONSOLE_KEY_FILE);
  try {
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(file, randomBytes(KEY_BYTES).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new HaulError('InvalidArgument', `cannot create the console key ${file}: ${(err as Error).message}. Check that the state directory is writable.`, { cause: err });
  }
  const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length !== KEY_BYTES) throw new HaulError('InvalidArgument', `the console key ${file} is damaged (${key.length} bytes instead of ${KEY_BYTES}); restore it from a backup, or remove it and reset every user's second factor.`);
  return new SecretBox(key);
}
