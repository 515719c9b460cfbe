// Connects out to a registered client with its pinned host key. With no pin yet (first contact)
// the key seen is pinned at once, before anything runs there: from then on any other key fails
// every job with HostKeyChanged (invariant 4).
import { HaulError } from '../../shared/errors.js';
import type { ClientConfig } from '../clients/client-config.js';
import type { ServerIdentity } from '../session/server-identity.js';
import { connectToClient, type ConnectTimeouts, type SshConnection } from '../session/ssh-connection.js';

/** `pinHostKey` records the key in the caller's client store (the database, or the CLI's). */
export type PinHostKey = (fingerprint: string) => void | Promise<void>;

export async function connectToRegisteredClient(client: ClientConfig, pinHostKey: PinHostKey, identity: ServerIdentity, log: (line: string) => void, timeouts?: ConnectTimeouts): Promise<SshConnection> {
  const conn = await connectToClient({
    host: client.host,
    port: client.port,
    user: client.user,
    identity,
    clientName: client.name,
    ...(client.hostKey ? { pinnedHostKey: client.hostKey } : {}),
    ...(timeouts ? { timeouts } : {}),
  });
  if (conn.firstContact) {
    try {
      await pinHostKey(conn.hostKeyFingerprint);
    } catch (err) {
      await conn.close();
      throw err;
    }
    log(`first contact with ${conn.label}: pinned its ${conn.hostKeyType} host key ${conn.hostKeyFingerprint}`);
  }
  return conn;
}

export interface Repinned {
  fingerprint: string;
  keyType: string;
  /** The key pinned before, if any (equal to `fingerprint` when nothing changed). */
  previous: string | null;
}

/**
 * Connects without a pin and pins the key the client shows: how an operator accepts a
 * deliberate host key change. With `expected`, only that key is pinned.
 */
export async function repinHostKey(client: ClientConfig, store: { pinHostKey(name: string, fingerprint: string): Promise<{ replaced?: string }> }, identity: ServerIdentity, expected?: string, timeouts?: ConnectTimeouts): Promise<Repinned> {
  const conn = await connectToClient({ host: client.host, port: client.port, user: client.user, identity, clientName: client.name, ...(timeouts ? { timeouts } : {}) });
  try {
    if (expected !== undefined && expected !== conn.hostKeyFingerprint) {
      throw new HaulError('HostKeyChanged', `${client.name} presents host key ${conn.hostKeyFingerprint}, not the ${expected} you gave; nothing was pinned. Check that you are talking to the right machine.`);
    }
    const { replaced } = await store.pinHostKey(client.name, conn.hostKeyFingerprint);
    return { fingerprint: conn.hostKeyFingerprint, keyType: conn.hostKeyType, previous: replaced ?? null };
  } finally {
    await conn.close();
  }
}
