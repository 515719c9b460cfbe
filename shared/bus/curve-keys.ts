// CURVE keys for the bus's TCP endpoint. A remote client (the web server on another machine,
// or `haul status --bus tcp://…`) holds a client key file: its own key pair and the daemon's
// public key, which it checks the daemon against. Keys are Z85 text, 40 characters each.
import * as fs from 'node:fs';
import { HaulError } from '../errors.js';

export const Z85_KEY_PATTERN = /^[0-9a-zA-Z.:+=^!/*?&<>()[\]{}@%$#-]{40}$/;

export interface CurveClientKeys {
  /** The daemon's public key: a daemon without its secret key cannot complete the handshake. */
  serverPublicKey: string;
  publicKey: string;
  secretKey: string;
}

const fieldNames = { 'server-public-key': 'serverPublicKey', 'public-key': 'publicKey', 'secret-key': 'secretKey' } as const;

export function formatCurveClientKeyFile(keys: CurveClientKeys, comment: string): string {
  return [
    `# Haul bus client key (${comment.replace(/[\r\n]/g, ' ')}).`,
    '# Whoever holds this file can command the Haul daemon over TCP: keep it secret (mode 0600).',
    `server-public-key ${keys.serverPublicKey}`,
    `public-key ${keys.publicKey}`,
    `secret-key ${keys.secretKey}`,
    '',
  ].join('\n');
}

export function parseCurveClientKeyFile(text: string, file: string): CurveClientKeys {
  const found: Partial<CurveClientKeys> = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [name, value, ...rest] = line.split(/\s+/);
    const field = fieldNames[name as keyof typeof fieldNames];
    if (!field || value === undefined || rest.length > 0 || !Z85_KEY_PATTERN.test(value)) {
      throw new HaulError('InvalidArgument', `${file}, line ${i + 1}: expected "server-public-key", "public-key" or "secret-key" followed by a 40-character Z85 key. Make a new key file with \`haul bus-key add\` on the daemon's machine.`);
    }
    found[field] = value;
  }
  const missing = Object.entries(fieldNames).filter(([, field]) => found[field] === undefined).map(([name]) => name);
  if (missing.length > 0) {
    throw new HaulError('InvalidArgument', `${file} lacks ${missing.join(', ')}; make a new key file with \`haul bus-key add\` on the daemon's machine.`);
  }
  return found as CurveClientKeys;
}

/** Reads a client key file, refusing one that other users could read (it holds a secret key). */
export function readCurveClientKeyFile(file: string): CurveClientKeys {
  let text: string;
  try {
    const st = fs.statSync(file);
    if ((st.mode & 0o077) !== 0) {
      throw new HaulError('InvalidArgument', `bus key file ${file} can be read by other users (mode ${(st.mode & 0o777).toString(8)}); its secret key lets anyone command the daemon. Run \`chmod 600 ${file}\`.`);
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof HaulError) throw err;
    throw new HaulError('InvalidArgument', `cannot read the bus key file ${file}: ${(err as Error).message}. Check --bus-key (or HAUL_BUS_KEY).`, { cause: err });
  }
  return parseCurveClientKeyFile(text, file);
}
