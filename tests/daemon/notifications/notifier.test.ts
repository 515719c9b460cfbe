// Notifications reach a real SMTP server (smtp-server, in this process) and a real HTTP
// receiver; an unreachable relay or a failing webhook is reported, never thrown.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Notifier, parseNotificationConfig } from '../../../daemon/notifications/notifier.js';
import { renderNotification, type Notification } from '../../../daemon/notifications/notification.js';
import { freePort } from '../../helpers/sshd.js';
import { parseMail, startSmtp, type ReceivedMail, type TestSmtp } from '../../helpers/smtp.js';

const parse = parseMail;

const failed: Notification = { kind: 'job-failed', jobId: 42, client: 'web1', jobKind: 'backup', cause: 'host-key-changed', message: 'the host key of web1 changed from SHA256:aaa to SHA256:bbb', finishedAt: '2026-11-23T03:00:07.000Z', attempt: 1 };

describe('notifications', () => {
  let mail: ReceivedMail[] = [];
  let smtp: TestSmtp;
  let smtpPort: number;
  const hooks: { headers: http.IncomingHttpHeaders; body: unknown }[] = [];
  let hookStatus = 200;
  let web: http.Server;
  let webPort: number;

  beforeAll(async () => {
    smtp = await startSmtp();
    smtpPort = smtp.port;
    mail = smtp.mail;
    web = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
        hooks.push({ headers: req.headers, body: JSON.parse(body) });
        res.writeHead(hookStatus).end();
      });
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    webPort = (web.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await smtp.close();
    await new Promise((r) => web.close(r));
  });

  it('a failed job is mailed with its cause, the advice for that cause and how to read the log', async () => {
    const notifier = new Notifier(parseNotificationConfig({ email: { host: '127.0.0.1', port: smtpPort, from: 'haul@backup.example.org', to: ['ops@example.org', 'oncall@example.org'] } }, 'test'));
    expect(await notifier.notify(failed)).toEqual([{ target: 'email', ok: true }]);
    notifier.close();
    expect(mail).toHaveLength(1);
    expect([mail[0]!.from, mail[0]!.to]).toEqual(['haul@backup.example.org', ['ops@example.org', 'oncall@example.org']]);
    expect(parse(mail[0]!.raw)).toEqual({
      subject: '[Haul] backup of web1 failed: host-key-changed',
      body: 'Job 42 (backup of web1, attempt 1) failed at 2026-11-23T03:00:07.000Z.\n\nCause: host-key-changed\nthe host key of web1 changed from SHA256:aaa to SHA256:bbb\n\nThe client presented a different host key than the pinned one. If the client was reinstalled, re-pin it with `haul client pin`; otherwise treat this as an attack.\nRead the full log with: haul log 42\n',
    });
  });

  it('a webhook receives the text and the event as JSON, with the configured headers', async () => {
    const notifier = new Notifier(parseNotificationConfig({ webhook: { url: `http://127.0.0.1:${webPort}/hook`, headers: { authorization: 'Bearer t0ken' } } }, 'test'));
    const overdue: Notification = { kind: 'client-overdue', client: 'db1', lastSuccess: '2026-11-20T03:00:00.000Z', thresholdHours: 36 };
    expect(await notifier.notify(overdue)).toEqual([{ target: 'webhook', ok: true }]);
    const { subject, text } = renderNotification(overdue);
    expect(hooks.at(-1)).toEqual({ headers: expect.objectContaining({ authorization: 'Bearer t0ken', 'content-type': 'application/json' }), body: { text: `${subject}\n${text}`, subject, event: overdue } });
    expect(subject).toBe('[Haul] db1 has no successful backup for over 36 hours');
  });

  it('an unreachable relay and a failing webhook are reported, not thrown, and the webhook is retried', async () => {
    const lines: string[] = [];
    const deadPort = await freePort();
    hookStatus = 503;
    const before = hooks.length;
    const notifier = new Notifier(parseNotificationConfig({ email: { host: '127.0.0.1', port: deadPort, from: 'haul@x.org', to: ['ops@x.org'] }, webhook: { url: `http://127.0.0.1:${webPort}/hook` } }, 'test'), (l) => lines.push(l));
    const results = await notifier.notify(failed);
    hookStatus = 200;
    expect(results.map((r) => [r.target, r.ok])).toEqual([['email', false], ['webhook', false]]);
    expect(results[0]!.error).toMatch(new RegExp(`^email to ops@x.org via 127.0.0.1:${deadPort} failed: .*ECONNREFUSED.*\\. Check the SMTP settings \\(host, port, secure, user\\) and that the relay accepts the sender\\.$`));
    expect(results[1]!.error).toBe(`webhook http://127.0.0.1:${webPort} failed: HTTP 503 Service Unavailable. Check the URL and that the receiver accepts JSON POSTs.`);
    expect(hooks.length - before).toBe(3);
    expect(lines).toEqual([`notification "[Haul] backup of web1 failed: host-key-changed" not delivered: ${results[0]!.error}`, `notification "[Haul] backup of web1 failed: host-key-changed" not delivered: ${results[1]!.error}`]);
  });

  it('the digest goes out only when asked for, and bad settings name the field', async () => {
    const digest: Notification = { kind: 'daily-digest', date: '2026-11-23', succeeded: 48, failed: 2, bytesNew: 3 * 1024 ** 3, overdue: ['db1'], failures: [{ client: 'db1', cause: 'unreachable' }, { client: 'web9', cause: 'auth-refused' }] };
    expect(await new Notifier(parseNotificationConfig({ webhook: { url: `http://127.0.0.1:${webPort}/` } }, 'test')).notify(digest)).toEqual([]);
    expect(renderNotification(digest)).toEqual({
      subject: '[Haul] daily summary 2026-11-23: 48 succeeded, 2 failed',
      text: 'Jobs on 2026-11-23: 48 succeeded, 2 failed; 3.0 GiB of new data.\n\nFailures:\n- db1: unreachable\n- web9: auth-refused\n\nClients without a recent successful backup: db1\n',
    });
    expect(() => parseNotificationConfig({ email: { host: 'smtp', from: 'a@b.c', to: [] } }, '/etc/haul/daemon.json')).toThrow(/^the notification settings in \/etc\/haul\/daemon.json are invalid at email.to: .+\. Fix them; see docs\/operations.md \(Notifications\)\.$/);
  });
});
