// How many stored bytes a client uses, for its quota. Each chunk is charged to the client that
// uploaded it first (docs/operations.md, Quotas): prune recounts that exactly from the repository
// (Client.storedBytes at storedBytesAt), and every backup since adds what it stored. A backup
// that ended without a snapshot adds its new bytes before compression, an upper bound: what it
// stored stays in the repository and the next run reuses it.
import type { Client } from '../../prisma/generated/sqlite/client.js';
import type { PrismaClient } from '../database/open-database.js';

export async function clientUsage(prisma: PrismaClient, client: Pick<Client, 'id' | 'storedBytes' | 'storedBytesAt'>): Promise<number> {
  const since = client.storedBytesAt === null ? {} : { finishedAt: { gt: client.storedBytesAt } };
  const [stored, unfinished] = await Promise.all([
    prisma.job.aggregate({ where: { clientId: client.id, kind: 'backup', state: 'succeeded', ...since }, _sum: { bytesStored: true } }),
    prisma.job.aggregate({ where: { clientId: client.id, kind: 'backup', state: { in: ['failed', 'cancelled'] }, ...since }, _sum: { bytesNew: true } }),
  ]);
  return Number(client.storedBytes + (stored._sum.bytesStored ?? 0n) + (unfinished._sum.bytesNew ?? 0n));
}

/** Writes prune's recount: every client's usage as of now (clients without snapshots use nothing). */
export async function recordPruneRecount(prisma: PrismaClient, storedBytesByClient: Record<string, number>, at: Date): Promise<void> {
  const clients = await prisma.client.findMany({ select: { id: true, name: true } });
  for (const c of clients) {
    await prisma.client.update({ where: { id: c.id }, data: { storedBytes: BigInt(storedBytesByClient[c.name] ?? 0), storedBytesAt: at } });
  }
}
