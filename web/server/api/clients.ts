// Changing a client from the console: its settings in the database (checked by the same rules
// as `haul client set`), then the daemon is asked to reload them; moving it to another tenant
// (admins only); and pinning its host key, which only the daemon can do (it connects to the
// client to read the key). Each names the client through the caller's tenant scope.
import { z } from 'zod';
import type { ClientChange } from '../../../daemon/database/client-store.js';
import { HaulError, isHaulError } from '../../../shared/errors.js';
import { forbidden, type RouteAction } from '../route-definition.js';

const OPERATE: readonly ['admin', 'operator'] = ['admin', 'operator'];

export const clientChangeRequest = z.strictObject({
  enabled: z.boolean().optional(),
  paths: z.array(z.string().min(1).max(4096)).min(1).max(100).optional(),
  excludes: z.array(z.string().min(1).max(4096)).max(1000).optional(),
  /** A cron expression, or null to run only when asked. */
  schedule: z.string().min(1).max(200).nullable().optional(),
  /** JSON text of a retention policy such as {"keepDaily":7}, or null to keep everything. */
  retention: z.string().min(2).max(2000).nullable().optional(),
  /** Moves the client to this tenant (admins only). */
  tenant: z.string().min(1).max(63).optional(),
});

/** Only parsed here; the client store checks the policy itself, with the same messages as `haul client set`. */
function parseRetention(text: string): ClientChange['retention'] {
  try {
    return JSON.parse(text) as ClientChange['retention'];
  } catch (err) {
    throw new HaulError('InvalidArgument', `the retention policy is not JSON (${(err as Error).message}); write it like {"keepDaily":7,"keepWeekly":4}.`);
  }
}

export const changeClient: RouteAction<z.infer<typeof clientChangeRequest>> = {
  body: clientChangeRequest,
  async handle(ctx) {
    const name = ctx.params['name']!;
    const caller = ctx.caller!;
    const { tenantId } = await ctx.services.scoped.client(caller, name, OPERATE);
    const { retention, tenant, ...rest } = ctx.body;
    const change = { ...rest, ...(retention === undefined ? {} : { retention: retention === null ? null : parseRetention(retention) }) };
    if (Object.keys(change).length === 0 && tenant === undefined) throw new HaulError('InvalidArgument', 'the request changes nothing; send at least one of enabled, paths, excludes, schedule, retention, tenant.');
    if (tenant !== undefined && caller.role !== 'admin') throw forbidden(caller, "move a client to another tenant", ['admin']);
    let client = Object.keys(change).length > 0 ? await ctx.services.clients.update(name, change) : await ctx.services.clients.get(name);
    let moved: { from: string; to: string } | undefined;
    if (tenant !== undefined) {
      const { from, to } = await ctx.services.tenants.moveClient(name, tenant);
      moved = { from, to: to.name };
      client = await ctx.services.clients.get(name);
    }
    let daemon: string;
    try {
      daemon = (await ctx.services.daemon.reloadConfig()).message;
    } catch (err) {
      daemon = `saved; the daemon will use it once it reloads its clients (${isHaulError(err) ? err.message : 'it did not answer'})`;
    }
    const tenantName = moved?.to ?? (await ctx.services.scoped.tenantName(tenantId));
    return {
      body: { client: { name: client.name, enabled: client.enabled, paths: client.paths, excludes: client.excludes, schedule: client.schedule, retention: client.retention, tenant: tenantName }, daemon },
      // A move concerns both tenants; the entry goes to the new one, whose auditors now answer for the client.
      audit: { target: name, detail: { ...ctx.body, ...(moved ? { movedFrom: moved.from } : {}) }, tenantId: moved ? await ctx.services.scoped.tenantOfClient(name) : tenantId },
    };
  },
};

export const hostKeyRequest = z.strictObject({
  fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'expected an OpenSSH fingerprint such as SHA256:…').optional(),
});

/** A connection test that pins the key the client shows (or confirms the given fingerprint): first contact and re-pinning alike. */
export const pinHostKey: RouteAction<z.infer<typeof hostKeyRequest>> = {
  body: hostKeyRequest,
  async handle(ctx) {
    const name = ctx.params['name']!;
    const { tenantId } = await ctx.services.scoped.client(ctx.caller!, name, OPERATE);
    const pinned = await ctx.services.daemon.pinHostKey({ client: name, ...(ctx.body.fingerprint ? { fingerprint: ctx.body.fingerprint } : {}) });
    return { body: pinned, audit: { target: name, detail: { previous: pinned.previous, fingerprint: pinned.fingerprint }, tenantId } };
  },
};
