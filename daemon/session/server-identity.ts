// The server's own SSH key pair: the identity the daemon logs in to clients with.
//
// Generated once (Ed25519) into a directory the caller chooses and reused from then on. The
// operator pastes the public half into each client's ~/.ssh/authorized_keys, prefixed with
// `restrict` so the key can run commands and nothing else (no port, agent or X11 forwarding,
// no pty, no ~/.ssh/rc).
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import ssh2 from 'ssh2';
import { HaulError } from '../../shared/errors.js';

const { utils } = ssh2;

export const PRIVATE_KEY_FILE = 'id_ed25519';
export const PUBLIC_KEY_FILE = 'id_ed25519.pub';

export interface ServerIdentity {
  /** The private key in OpenSSH format, as ssh2's `privateKey` option takes it. */
  readonly privateKey: string;
  /** The key type, `ssh-ed25519`. */
  readonly keyType: string;
  /** The public key blob in SSH wire format. */
  readonly publicKeyBlob: Buffer;
  /** `ssh-ed25519 AAAA…` without a comment. */
  readonly publicKey: string;
  /** OpenSSH-style fingerprint of the public key: `SHA256:` + unpadded base64. */
  readonly fingerprint: string;
  /** Where the private key is stored. */
  readonly privateKeyPath: string;
}

/** OpenSSH's fingerprint of a public key blob (wire format): `SHA256:` + base64 without `=`. */
export function sshFingerprint(publicKeyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '');
}

/** The key type named at the start of a public key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …). */
export function sshKeyType(publicKeyBlob: Buffer): string {
  if (publicKeyBlob.length < 4) return 'unknown';
  const len = publicKeyBlob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > publicKeyBlob.length) return 'unknown';
  const type = publicKeyBlob.subarray(4, 4 + len).toString('latin1');
  return /^[a-z0-9@.-]+$/.test(type) ? type : 'unknown';
}

/**
 * Loads the identity from `dir`, generating it on first use. The directory is created with
 * mode 0700, both key files with mode 0600. Safe against two processes creating it at once:
 * the key is written to a temporary file and linked into place, so whoever links first wins and
 * the other loads that key.
 */
/**
 * ssh2's pure-JavaScript key generator (used when its optional native addon is not built, as
 * here) drops a leading zero byte of the ed25519 public key, about 1 key in 300, and then cannot
 * read its own output. Such a key is simply generated again.
 */
function generateParseableKeyPair(comment: string): { private: string; public: string } {
  for (let attempt = 0; ; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment });
    const parsed = utils.parseKey(pair.private);
    if (!(parsed instanceof Error) && parsed.isPrivateKey()) return pair;
    if (attempt >= 20) throw new HaulError('InvalidArgument', 'could not generate a readable ed25519 key for the server (ssh2 failed 20 times in a row).');
  }
}

export function loadOrCreateServerIdentity(dir: string, options: { comment?: string } = {}): ServerIdentity {
  const privateKeyPath = path.join(dir, PRIVATE_KEY_FILE);
  if (!fs.existsSync(privateKeyPath)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const comment = options.comment ?? defaultComment();
    const pair = generateParseableKeyPair(comment);
    const tmp = path.join(dir, `.${PRIVATE_KEY_FILE}.tmp-${randomBytes(6).toString('hex')}`);
    writePrivate(tmp, pair.private);
    try {
      fs.linkSync(tmp, privateKeyPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  const identity = loadServerIdentity(dir);
  // The .pub file is for people (and ssh-keygen -lf); the key is always derived from the private one.
  const pubPath = path.join(dir, PUBLIC_KEY_FILE);
  const pubLine = `${identity.publicKey} ${options.comment ?? defaultComment()}\n`;
  if (!fs.existsSync(pubPath)) {
    try {
      writePrivate(pubPath, pubLine);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return identity;
}

/** Loads an existing identity; refuses a private key that others can read, as OpenSSH does. */
export function loadServerIdentity(dir: string): ServerIdentity {
  const privateKeyPath = path.join(dir, PRIVATE_KEY_FILE);
  let text: string;
  let mode: number;
  try {
    mode = fs.statSync(privateKeyPath).mode & 0o777;
    text = fs.readFileSync(privateKeyPath, 'utf8');
  } catch (err) {
    throw new HaulError('KeyNotFound', `The server's SSH key ${privateKeyPath} cannot be read (${(err as Error).message}).`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    throw new HaulError(
      'InvalidArgument',
      `The server's SSH private key ${privateKeyPath} can be read by other users (mode ${mode.toString(8).padStart(4, '0')}). ` +
        `Run: chmod 600 ${privateKeyPath}`,
    );
  }
  const parsed = utils.parseKey(text);
  if (parsed instanceof Error || !parsed.isPrivateKey()) {
    throw new HaulError('InvalidArgument', `${privateKeyPath} is not an unencrypted OpenSSH private key${parsed instanceof Error ? ` (${parsed.message})` : ''}.`);
  }
  const publicKeyBlob = parsed.getPublicSSH();
  const keyType = sshKeyType(publicKeyBlob);
  return {
    privateKey: text,
    keyType,
    publicKeyBlob,
    publicKey: `${keyType} ${publicKeyBlob.toString('base64')}`,
    fingerprint: sshFingerprint(publicKeyBlob),
    privateKeyPath,
  };
}

/**
 * The exact line an operator appends to the client user's ~/.ssh/authorized_keys:
 * `restrict ssh-ed25519 AAAA… haul@HOSTNAME`. `restrict` turns off port, agent and X11
 * forwarding, pty allocation and ~/.ssh/rc for this key; the daemon needs none of them.
 */
export function authorizedKeysLine(identity: ServerIdentity, options: { comment?: string } = {}): string {
  const comment = options.comment ?? defaultComment();
  // A comment ends the line; a newline or other control character would let it add a second key line.
  if (!/^[\x21-\x7e]{1,200}$/.test(comment)) {
    throw new HaulError('InvalidArgument', `The comment for the authorized_keys line must be 1 to 200 printable characters without spaces, got ${JSON.stringify(comment)}.`);
  }
  return `restrict ${identity.publicKey} ${comment}`;
}

function defaultComment(): string {
  const host = os.hostname().replace(/[^\x21-\x7e]/g, '-') || 'localhost';
  return `haul@${host}`.slice(0, 200);
}

function writePrivate(file: string, content: string): void {
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    fs.writeFileSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(file, 0o600); // the umask cannot widen 0600, but be explicit
}
