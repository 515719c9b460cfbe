// Sends notifications to the configured targets: email over SMTP (nodemailer) and a JSON webhook
// for chat tools. A failed delivery is reported to the daemon's log and never fails a job: the
// job's own record and log are the truth; a notification is a courtesy that may be lost.
import nodemailer, { type Transporter } from 'nodemailer';
import { z } from 'zod';
import { HaulError } from '../../shared/errors.js';
import { renderNotification, type Notification } from './notification.js';

export const notificationConfigSchema = z.object({
  email: z.object({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(587),
    /** true: TLS from the start (port 465); false: STARTTLS when offered. */
    secure: z.boolean().default(false),
    user: z.string().optional(),
    password: z.string().optional(),
    from: z.string().min(3),
    to: z.array(z.string().min(3)).min(1),
    /** Accept a self-signed SMTP certificate (a private relay). */
    allowSelfSigned: z.boolean().default(false),
  }).strict().optional(),
  webhook: z.object({
    url: z.url(),
    headers: z.record(z.string(), z.string()).default({}),
  }).strict().optional(),
  /** Which events go out (default: all but the digest, which needs `digest: true`). */
  events: z.array(z.enum(['job-failed', 'verify-failed', 'client-overdue', 'quota-exceeded', 'daily-digest'])).optional(),
  digest: z.boolean().default(false),
}).strict();

export type NotificationConfig = z.infer<typeof notificationConfigSchema>;

export function parseNotificationConfig(value: unknown, where: string): NotificationConfig {
  const r = notificationConfigSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new HaulError('InvalidArgument', `the notification settings in ${where} are invalid at ${issue.path.join('.') || '(top)'}: ${issue.message}. Fix them; see docs/operations.md (Notifications).`);
  }
  return r.data;
}

export interface DeliveryResult {
  target: 'email' | 'webhook';
  ok: boolean;
  error?: string;
}

const webhookTimeoutMs = 10_000;
const webhookAttempts = 3;

export class Notifier {
  private readonly transport: Transporter | undefined;

  constructor(
    private readonly config: NotificationConfig,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    const e = config.email;
    if (e) {
      this.transport = nodemailer.createTransport({
        host: e.host,
        port: e.port,
        secure: e.secure,
        ...(e.user ? { auth: { user: e.user, pass: e.password ?? '' } } : {}),
        tls: { rejectUnauthorized: !e.allowSelfSigned },
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 20_000,
      });
    }
  }

  wants(kind: Notification['kind']): boolean {
    if (this.config.events) return this.config.events.includes(kind);
    return kind !== 'daily-digest' || this.config.digest;
  }

  /**
   * Delivers to every target; resolves with each target's outcome, never rejects. `alsoTo` (a
   * tenant's recipients) get their own copy by email, so they never see the server's addresses.
   */
  async notify(n: Notification, options: { alsoTo?: string[] } = {}): Promise<DeliveryResult[]> {
    if (!this.wants(n.kind)) return [];
    const rendered = renderNotification(n);
    const results: DeliveryResult[] = [];
    if (this.transport && this.config.email) {
      results.push(await this.mail(this.config.email.to, rendered));
      if (options.alsoTo?.length) results.push(await this.mail(options.alsoTo, rendered));
    } else if (options.alsoTo?.length) {
      this.log(`notification "${rendered.subject}" not sent to ${options.alsoTo.join(', ')}: the daemon has no email settings (notifications.email), so a tenant's recipients cannot be mailed.`);
    }
    if (this.config.webhook) results.push(await this.postWebhook(n, rendered.subject, rendered.text));
    return results;
  }

  private async mail(to: string[], rendered: { subject: string; text: string }): Promise<DeliveryResult> {
    const email = this.config.email!;
    try {
      await this.transport!.sendMail({ from: email.from, to, subject: rendered.subject, text: rendered.text });
      return { target: 'email', ok: true };
    } catch (err) {
      const error = `email to ${to.join(', ')} via ${email.host}:${email.port} failed: ${(err as Error).message}. Check the SMTP settings (host, port, secure, user) and that the relay accepts the sender.`;
      this.log(`notification "${rendered.subject}" not delivered: ${error}`);
      return { target: 'email', ok: false, error };
    }
  }

  private async postWebhook(n: Notification, subject: string, text: string): Promise<DeliveryResult> {
    const { url, headers } = this.config.webhook!;
    let last = '';
    for (let attempt = 1; attempt <= webhookAttempts; attempt++) {
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          // `text` is what Slack and Mattermost show; the event's fields are there for tools.
          body: JSON.stringify({ text: `${subject}\n${text}`, subject, event: n }),
          signal: AbortSignal.timeout(webhookTimeoutMs),
        });
        if (res.ok) return { target: 'webhook', ok: true };
        last = `HTTP ${res.status} ${res.statusText}`;
        // A client error will not improve with a retry.
        if (res.status >= 400 && res.status < 500 && res.status !== 429) break;
      } catch (err) {
        last = (err as Error).name === 'TimeoutError' ? `no answer within ${webhookTimeoutMs / 1000} s` : (err as Error).message;
      }
      if (attempt < webhookAttempts) await new Promise((r) => setTimeout(r, 500 * 2 ** (attempt - 1)));
    }
    const error = `webhook ${new URL(url).origin} failed: ${last}. Check the URL and that the receiver accepts JSON POSTs.`;
    this.log(`notification "${subject}" not delivered: ${error}`);
    return { target: 'webhook', ok: false, error };
  }

  close(): void {
    this.transport?.close();
  }
}
