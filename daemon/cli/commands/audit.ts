import type { Command } from 'commander';
import { AuditTrail } from '../../database/audit-trail.js';
import { HaulError } from '../../../shared/errors.js';
import { output } from '../context.js';
import { withDatabase } from '../database.js';

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('the tamper-evident audit trail of console and CLI actions');

  audit
    .command('verify')
    .description("check the audit trail's hash chain from the first entry to the last; exits 3 and names the first broken entry")
    .option('--anchor <hash>', 'also check that the entry with this hash (the newest hash an earlier verify printed) is still in the chain')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { anchor?: string; json?: boolean }, cmd: Command) => {
      if (opts.anchor !== undefined && !/^[0-9a-fA-F]{64}$/.test(opts.anchor)) {
        throw new HaulError('InvalidArgument', `${JSON.stringify(opts.anchor)} is not a hash: give the 64 hex digits an earlier \`haul audit verify\` printed.`);
      }
      await withDatabase(cmd, async (db) => {
        const result = await new AuditTrail(db).verify(opts.anchor === undefined ? {} : { anchor: opts.anchor });
        if (result.ok) {
          output(opts.json, result, () => `the audit trail is intact: ${result.entries} entries; newest hash ${result.head}\n(keep that hash somewhere else; \`haul audit verify --anchor HASH\` later proves the trail still contains it)\n`);
          return;
        }
        if (opts.json) output(true, result, () => '');
        throw new HaulError('AuditTrailBroken', result.message);
      });
    });
}
