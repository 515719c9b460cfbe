// A real SMTP server (smtp-server) on a free loopback port, keeping every message it receives,
// and a reader for the simple (non-multipart) messages nodemailer sends for notifications.
import { SMTPServer } from 'smtp-server';
import { freePort } from './sshd.js';

export interface ReceivedMail {
  from: string;
  to: string[];
  raw: string;
}

export interface TestSmtp {
  readonly port: number;
  readonly mail: ReceivedMail[];
  /** Resolves once `count` messages have arrived (or fails after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

export async function startSmtp(): Promise<TestSmtp> {
  const mail: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, session, done) {
      let raw = '';
      stream.setEncoding('utf8').on('data', (d: string) => (raw += d)).on('end', () => {
        mail.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), raw });
        done();
      });
    },
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    port,
    mail,
    async waitFor(count, timeoutMs = 30_000) {
      const until = Date.now() + timeoutMs;
      while (mail.length < count) {
        if (Date.now() > until) throw new Error(`expected ${count} message(s), received ${mail.length}: ${mail.map((m) => parseMail(m.raw).subject).join(' | ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return mail;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The subject and the decoded text body of a simple (non-multipart) message. */
export function parseMail(raw: string): { subject: string; body: string } {
  const [head, ...rest] = raw.split('\r\n\r\n');
  const subject = /^Subject: (.*(?:\r\n .*)*)$/m.exec(head!)![1]!.replace(/\r\n /g, ' ');
  let body = rest.join('\r\n\r\n');
  if (/Content-Transfer-Encoding: quoted-printable/i.test(head!)) {
    body = Buffer.from(body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
  }
  return { subject, body: body.replace(/\r\n/g, '\n') };
}
