import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MailNotSent } from '../../adapters/mail/mail-rules.ts';
import { SmtpMailer } from '../../adapters/mail/smtp.ts';
import { runMailerContract } from '../contracts/mailer.case.ts';
import { startSmtpServer } from '../support/smtp.ts';

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
