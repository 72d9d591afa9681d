/**
 * Cloud Mailer: plain-text mail through Amazon SES (API v2 SendEmail). The only file that
 * imports @aws-sdk/client-sesv2. The same address rules as SMTP apply before anything is sent.
 */
import { SESv2Client, SendEmailCommand, type SESv2ClientConfig } from '@aws-sdk/client-sesv2';
import type { Mailer } from '../../core/ports.ts';
import { MailNotSent, assertSendable, isPlainAddress } from './mail-rules.ts';

export interface SesMailerOptions {
  /** MAIL_FROM: a verified SES identity (address or an address at a verified domain). */
  from: string;
  client?: SESv2Client | SESv2ClientConfig;
  /** SES configuration set (bounce/complaint events), when the stack defines one. */
  configurationSetName?: string;
}

function isSesClient(c: SesMailerOptions['client']): c is SESv2Client {
  return typeof (c as SESv2Client | undefined)?.send === 'function';
}

/**
 * @example new SesMailer({ from: env.MAIL_FROM })
 */
export class SesMailer implements Mailer {
  readonly from: string;
  readonly client: SESv2Client;
  private readonly configurationSetName: string | undefined;

  constructor(options: SesMailerOptions) {
    if (!isPlainAddress(options.from)) {
      throw new Error(
        `MAIL_FROM must be one plain e-mail address (like selfdevop@example.com), got ${JSON.stringify(options.from)}`,
      );
    }
    this.from = options.from;
    this.client = isSesClient(options.client) ? options.client : new SESv2Client(options.client ?? {});
    this.configurationSetName = options.configurationSetName || undefined;
  }

  async send(message: { to: string; subject: string; text: string }): Promise<void> {
    assertSendable(message);
    try {
      await this.client.send(
        new SendEmailCommand({
          FromEmailAddress: this.from,
          Destination: { ToAddresses: [message.to] },
          Content: {
            Simple: {
              Subject: { Data: message.subject, Charset: 'UTF-8' },
              Body: { Text: { Data: message.text, Charset: 'UTF-8' } },
            },
          },
          ...(this.configurationSetName ? { ConfigurationSetName: this.configurationSetName } : {}),
        }),
      );
    } catch (e) {
      const name = (e as { name?: string }).name ?? 'Error';
      throw new MailNotSent(message.to, `SES ${name}: ${(e as Error).message}`, { cause: e });
    }
  }
}
