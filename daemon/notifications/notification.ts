// What Haul tells people about, and how each event reads as a message. Events are data; the
// text is made here once, so an email, a webhook and the daily digest say the same thing.
import { formatBytes } from '../../shared/display.js';

export type Notification =
  | { kind: 'job-failed'; jobId: number; client: string | null; jobKind: string; cause: string; message: string; finishedAt: string; attempt: number }
  | { kind: 'verify-failed'; jobId: number; errors: number; problems: string[]; finishedAt: string }
  | { kind: 'client-overdue'; client: string; lastSuccess: string | null; thresholdHours: number }
  /** `tenant`: the quota passed is the tenant's (all its clients together), not the client's own. */
  | { kind: 'quota-exceeded'; client: string; tenant?: string; usedBytes: number; quotaBytes: number; jobId: number }
  | { kind: 'daily-digest'; date: string; succeeded: number; failed: number; bytesNew: number; overdue: string[]; failures: { client: string; cause: string }[] };

export interface RenderedNotification {
  subject: string;
  text: string;
}

const causeAdvice: Record<string, string> = {
  unreachable: 'Check that the client is up and its SSH port reachable from the server. The daemon retries this cause by itself.',
  'auth-refused': "The client refused the server's SSH key. Check the authorized_keys line (`haul client add` prints it).",
  'host-key-changed': 'The client presented a different host key than the pinned one. If the client was reinstalled, re-pin it with `haul client pin`; otherwise treat this as an attack.',
  'protocol-violation': "The client's probe sent data that breaks the protocol. The job was stopped and nothing it sent was trusted; inspect the client.",
  'probe-error': "The probe failed on the client; the job log has the probe's own message.",
  'storage-error': "The server could not write the repository (disk full or failing?). Check the repository's storage.",
  quota: "The client reached its storage quota. Raise it or tighten the client's retention.",
  timeout: 'The job took longer than its time limit or stalled. Check the network and the amount of changed data.',
  'daemon-restart': 'The daemon stopped while the job ran. The next run reuses what had arrived.',
};

export function renderNotification(n: Notification): RenderedNotification {
  switch (n.kind) {
    case 'job-failed': {
      const who = n.client ? `${n.jobKind} of ${n.client}` : n.jobKind;
      return {
        subject: `[Haul] ${who} failed: ${n.cause}`,
        text: `Job ${n.jobId} (${who}, attempt ${n.attempt}) failed at ${n.finishedAt}.\n\nCause: ${n.cause}\n${n.message}\n\n${causeAdvice[n.cause] ?? 'The job log has the details.'}\nRead the full log with: haul log ${n.jobId}\n`,
      };
    }
    case 'verify-failed':
      return {
        subject: `[Haul] repository verification found ${n.errors} error(s)`,
        text: `Verification job ${n.jobId} finished at ${n.finishedAt} with ${n.errors} error(s):\n\n${n.problems.map((p) => `- ${p}`).join('\n')}\n\nThe files named above cannot be restored from the snapshots named. The next backup of each affected client uploads again what the client still has. Full report: haul log ${n.jobId}\n`,
      };
    case 'client-overdue':
      return {
        subject: `[Haul] ${n.client} has no successful backup for over ${n.thresholdHours} hours`,
        text: `Client ${n.client} has not been backed up successfully ${n.lastSuccess ? `since ${n.lastSuccess}` : 'ever'}; its threshold is ${n.thresholdHours} hours.\n\nCheck its recent jobs with: haul jobs --client ${n.client}\n`,
      };
    case 'quota-exceeded':
      if (n.tenant !== undefined) {
        return {
          subject: `[Haul] tenant ${n.tenant} is over its storage quota (${n.client})`,
          text: `Job ${n.jobId} of ${n.client} stopped: the clients of tenant ${n.tenant} use ${formatBytes(n.usedBytes)} of its ${formatBytes(n.quotaBytes)} quota. What was stored before stays consistent.\n\nThe tenant reached its storage quota. Raise it (haul tenant edit ${n.tenant} --quota …) or tighten its clients' retention.\n`,
        };
      }
      return {
        subject: `[Haul] ${n.client} is over its storage quota`,
        text: `Job ${n.jobId} of ${n.client} stopped: the client uses ${formatBytes(n.usedBytes)} of its ${formatBytes(n.quotaBytes)} quota. What was stored before stays consistent.\n\n${causeAdvice['quota']}\n`,
      };
    case 'daily-digest':
      return {
        subject: `[Haul] daily summary ${n.date}: ${n.succeeded} succeeded, ${n.failed} failed`,
        text: `Jobs on ${n.date}: ${n.succeeded} succeeded, ${n.failed} failed; ${formatBytes(n.bytesNew)} of new data.\n` +
          (n.failures.length ? `\nFailures:\n${n.failures.map((f) => `- ${f.client}: ${f.cause}`).join('\n')}\n` : '') +
          (n.overdue.length ? `\nClients without a recent successful backup: ${n.overdue.join(', ')}\n` : ''),
      };
  }
}
