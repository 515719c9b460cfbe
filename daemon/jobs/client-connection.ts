// Connects out to a registered client with its pinned host key. With no pin yet (first contact)
// the key seen is pinned at once, before anything runs there: from then on any other key fails
// every job with HostKeyChanged (invariant 4).
import type { ClientConfig, ClientRegistry } from '../clients/client-registry.js';
import type { ServerIdentity } from '../session/server-identity.js';
import { connectToClient, type SshConnection } from '../session/ssh-connection.js';

export async function connectToRegisteredClient(client: ClientConfig, registry: ClientRegistry, identity: ServerIdentity, log: (line: string) => void): Promise<SshConnection> {
  const conn = await connectToClient({
    host: client.host,
    port: client.port,
    user: client.user,
    identity,
    clientName: client.name,
    ...(client.hostKey ? { pinnedHostKey: client.hostKey } : {}),
  });
  if (conn.firstContact) {
    try {
      registry.update(client.name, (c) => ({ ...c, hostKey: conn.hostKeyFingerprint }));
    } catch (err) {
      await conn.close();
      throw err;
    }
    log(`first contact with ${conn.label}: pinned its ${conn.hostKeyType} host key ${conn.hostKeyFingerprint}`);
  }
  return conn;
}
