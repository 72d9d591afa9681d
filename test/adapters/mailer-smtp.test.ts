import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { MailNotSent } from '../../adapters/mail/mail-rules.ts';
import { SmtpMailer } from '../../adapters/mail/smtp.ts';
import { type ReceivedMail, runMailerContract } from '../contracts/mailer.case.ts';

interface Captured extends ReceivedMail {
  from: string;
  raw: string;
}

/** Decodes the RFC 2047 words nodemailer uses for non-ASCII headers. */
function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[QqBb]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(
      /=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g,
      (_all, _charset: string, encoding: string, data: string) =>
        encoding.toUpperCase() === 'B'
          ? Buffer.from(data, 'base64').toString('utf8')
          : decodeQuotedPrintable(data.replace(/_/g, ' ')),
    );
}

function decodeQuotedPrintable(value: string): string {
  // value holds bytes as latin1 characters; =XX escapes are bytes of UTF-8 text.
  const soft = value.replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < soft.length; i++) {
    const hex = soft.slice(i + 1, i + 3);
    if (soft[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(soft.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Just enough MIME for the single-part text/plain messages SmtpMailer sends. */
function parse(raw: string, rcpt: string): Captured {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
  // SMTP ends the data with CRLF before the final dot; it is not part of the text sent.
  const body = raw.slice(split + 4).replace(/\r\n$/, '');
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  const encoding = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  let text = body;
  if (encoding === 'quoted-printable') text = decodeQuotedPrintable(body);
  else if (encoding === 'base64') text = Buffer.from(body, 'base64').toString('utf8');
  text = text.replace(/\r\n/g, '\n');
  return {
    to: rcpt,
    from: headers.get('from') ?? '',
    subject: decodeWords(headers.get('subject') ?? ''),
    text,
    raw,
  };
}

async function startSmtpServer(refuse: string[]) {
  const received: Captured[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo(address, _session, callback) {
      if (refuse.includes(address.address)) {
        return callback(
          Object.assign(new Error(`mailbox ${address.address} unavailable`), { responseCode: 550 }),
        );
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        for (const rcpt of session.envelope.rcptTo)
          received.push(parse(Buffer.concat(chunks).toString('latin1'), rcpt.address));
        callback();
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    const listener = server.listen(0, '127.0.0.1', () =>
      resolve((listener.address() as AddressInfo).port),
    );
    listener.once('error', reject);
  });
  return {
    port,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

runMailerContract({
  make: async ({ refuse }) => {
    const server = await startSmtpServer(refuse);
    const mailer = new SmtpMailer({
      url: `smtp://127.0.0.1:${server.port}`,
      from: 'selfdevop@example.com',
      timeoutMs: 5000,
    });
    return {
      mailer,
      inbox: () => server.received.map(({ to, subject, text }) => ({ to, subject, text })),
      close: async () => {
        mailer.close();
        await server.close();
      },
    };
  },
});

describe('SmtpMailer', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  it('sends from MAIL_FROM as plain text', async () => {
    const server = await startSmtpServer([]);
    cleanups.push(server.close);
    const mailer = new SmtpMailer({
      url: `smtp://127.0.0.1:${server.port}`,
      from: 'noreply@example.com',
    });
    await mailer.send({ to: 'ops@example.com', subject: 'hello', text: 'body' });
    expect(server.received).toHaveLength(1);
    expect(server.received[0]?.from).toBe('noreply@example.com');
    expect(server.received[0]?.raw).toMatch(/^Content-Type: text\/plain; charset=utf-8$/m);
  });

  it('rejects with MailNotSent naming the recipient and server when nothing listens', async () => {
    const closed = net.createServer();
    const port = await new Promise<number>((resolve) =>
      closed.listen(0, '127.0.0.1', () => resolve((closed.address() as AddressInfo).port)),
    );
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const mailer = new SmtpMailer({
      url: `smtp://127.0.0.1:${port}`,
      from: 'noreply@example.com',
      timeoutMs: 2000,
    });
    const error = await mailer
      .send({ to: 'ops@example.com', subject: 's', text: 't' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MailNotSent);
    expect((error as MailNotSent).recipient).toBe('ops@example.com');
    expect((error as Error).message).toMatch(
      new RegExp(
        `^mail to ops@example.com was not sent: SMTP server 127.0.0.1:${port}: .*ECONNREFUSED`,
      ),
    );
  });

  it('gives up on a server that never greets, within the timeout', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    const port = await new Promise<number>((resolve) =>
      silent.listen(0, '127.0.0.1', () => resolve((silent.address() as AddressInfo).port)),
    );
    cleanups.push(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const mailer = new SmtpMailer({
      url: `smtp://127.0.0.1:${port}`,
      from: 'noreply@example.com',
      timeoutMs: 300,
    });
    const started = Date.now();
    await expect(mailer.send({ to: 'ops@example.com', subject: 's', text: 't' })).rejects.toThrow(
      /^mail to ops@example.com was not sent: SMTP server 127.0.0.1:\d+: (Timeout|Greeting never received)/,
    );
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('refuses a bad SMTP_URL, naming the variable and hiding the password', () => {
    expect(() => new SmtpMailer({ url: '', from: 'a@example.com' })).toThrow(
      'SMTP_URL must be a URL like',
    );
    expect(
      () => new SmtpMailer({ url: 'http://user:hunter2@mail.example.com', from: 'a@example.com' }),
    ).toThrow(
      'SMTP_URL must start with smtp:// or smtps://, got http:// (http://user:***@mail.example.com/)',
    );
    expect(
      () =>
        new SmtpMailer({ url: 'smtp://user:hunter2@mail.example.com:587', from: 'a@example.com' }),
    ).not.toThrow();
  });

  it('refuses a MAIL_FROM that is not one plain address', () => {
    for (const from of ['', 'selfdevop', 'a@example.com, b@example.com']) {
      expect(() => new SmtpMailer({ url: 'smtp://127.0.0.1:25', from })).toThrow(
        'MAIL_FROM must be one plain e-mail address',
      );
    }
  });
});
