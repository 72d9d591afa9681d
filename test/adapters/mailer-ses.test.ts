import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it, vi } from 'vitest';
import { MailNotSent } from '../../adapters/mail/mail-rules.ts';
import { SesMailer } from '../../adapters/mail/ses.ts';
import { runMailerContract, type ReceivedMail } from '../contracts/mailer.case.ts';

class SesError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** SES at the SDK boundary: keeps what SendEmail was asked to deliver, refuses some recipients as SES does. */
function fakeSes(refuse: string[] = []) {
  const client = new SESv2Client({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  });
  const mock = mockClient(client);
  const inbox: Array<ReceivedMail & { from: string }> = [];
  mock.on(SendEmailCommand).callsFake((input: SendEmailCommand['input']) => {
    const to = input.Destination?.ToAddresses ?? [];
    const refused = to.find((a) => refuse.includes(a));
    if (refused)
      throw new SesError(
        'MessageRejected',
        `Email address is not verified. The following identities failed the check: ${refused}`,
      );
    for (const address of to) {
      inbox.push({
        to: address,
        from: input.FromEmailAddress ?? '',
        subject: input.Content?.Simple?.Subject?.Data ?? '',
        text: input.Content?.Simple?.Body?.Text?.Data ?? '',
      });
    }
    return { MessageId: `msg-${inbox.length}` };
  });
  return { client, mock, inbox };
}

runMailerContract({
  make: ({ refuse }) => {
    const ses = fakeSes(refuse);
    const mailer = new SesMailer({ from: 'selfdevop@example.com', client: ses.client });
    return {
      mailer,
      inbox: () => ses.inbox.map(({ to, subject, text }) => ({ to, subject, text })),
    };
  },
});

describe('SesMailer', () => {
  it('sends one plain-text UTF-8 message from MAIL_FROM, in the configuration set', async () => {
    const ses = fakeSes();
    const mailer = new SesMailer({
      from: 'noreply@example.com',
      client: ses.client,
      configurationSetName: 'selfdevop',
    });
    await mailer.send({ to: 'ops@example.com', subject: 'hi', text: 'body' });
    expect(ses.mock.commandCalls(SendEmailCommand)[0]?.args[0].input).toEqual({
      FromEmailAddress: 'noreply@example.com',
      Destination: { ToAddresses: ['ops@example.com'] },
      Content: {
        Simple: {
          Subject: { Data: 'hi', Charset: 'UTF-8' },
          Body: { Text: { Data: 'body', Charset: 'UTF-8' } },
        },
      },
      ConfigurationSetName: 'selfdevop',
    });
  });

  it('turns an SES failure into MailNotSent naming the error', async () => {
    const ses = fakeSes();
    ses.mock
      .on(SendEmailCommand)
      .rejects(new SesError('TooManyRequestsException', 'Maximum sending rate exceeded.'));
    const mailer = new SesMailer({ from: 'noreply@example.com', client: ses.client });
    const error = await mailer
      .send({ to: 'ops@example.com', subject: 's', text: 't' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MailNotSent);
    expect((error as Error).message).toBe(
      'mail to ops@example.com was not sent: SES TooManyRequestsException: Maximum sending rate exceeded.',
    );
  });

  it('makes its own client from settings on first use, and destroy() closes only a client it has', async () => {
    const mock = mockClient(SESv2Client);
    const destroy = vi.spyOn(SESv2Client.prototype, 'destroy');
    try {
      mock.on(SendEmailCommand).resolves({ MessageId: 'msg-1' });
      const mailer = new SesMailer({
        from: 'noreply@example.com',
        client: { region: 'eu-central-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } },
      });
      await mailer.destroy();
      expect(destroy).not.toHaveBeenCalled();
      await mailer.send({ to: 'ops@example.com', subject: 's', text: 't' });
      expect(mock.commandCalls(SendEmailCommand)[0]?.args[0].input.Destination).toEqual({
        ToAddresses: ['ops@example.com'],
      });
      expect(await (mock.call(0).thisValue as SESv2Client).config.region()).toBe('eu-central-1');
      await mailer.destroy();
      expect(destroy).toHaveBeenCalledTimes(1);
    } finally {
      destroy.mockRestore();
      mock.restore();
    }
  });

  it('refuses a MAIL_FROM that is not one plain address', () => {
    for (const from of ['', 'selfdevop', 'a@example.com, b@example.com']) {
      expect(() => new SesMailer({ from, client: fakeSes().client })).toThrow(
        'MAIL_FROM must be one plain e-mail address',
      );
    }
  });
});
