/**
 * Cloud Mailer: plain-text mail through Amazon SES (API v2 SendEmail). The only file that
 * imports @aws-sdk/client-sesv2, and only when the first mail goes out, so a cold start
 * does not parse it. The same address rules as SMTP apply before anything is sent.
 */
import type * as SesSdk from '@aws-sdk/client-sesv2';
import type { SESv2Client, SESv2ClientConfig } from '@aws-sdk/client-sesv2';
import type { Mailer } from '../../core/ports.ts';
import { MailNotSent, assertSendable, isPlainAddress } from './mail-rules.ts';
import { exportsOf, onFirstUse } from '../on-first-use.ts';

export interface SesMailerOptions {
  /** MAIL_FROM: a verified SES identity (address or an address at a verified domain). */
  from: string;
  client?: SESv2Client | SESv2ClientConfig;
  /** SES configuration set (bounce/complaint events), when the stack defines one. */
  configurationSetName?: string;
}

/** The SDK's exports (TypeScript also lists a default export for a CommonJS package). */
type SesSdkExports = Omit<typeof SesSdk, 'default'>;
const loadSdk: () => Promise<SesSdkExports> = onFirstUse(() =>
  import('@aws-sdk/client-sesv2').then(exportsOf),
);

function isSesClient(c: SesMailerOptions['client']): c is SESv2Client {
  return typeof (c as SESv2Client | undefined)?.send === 'function';
}

/**
 * @example new SesMailer({ from: env.MAIL_FROM })
 */
export class SesMailer implements Mailer {
  readonly from: string;
  private readonly clientOption: SesMailerOptions['client'];
  private loaded: Promise<{ ses: SesSdkExports; client: SESv2Client }> | undefined;
  private readonly configurationSetName: string | undefined;

  constructor(options: SesMailerOptions) {
    if (!isPlainAddress(options.from)) {
      throw new Error(
        `MAIL_FROM must be one plain e-mail address (like selfdevop@example.com), got ${JSON.stringify(options.from)}`,
      );
    }
    this.from = options.from;
    this.clientOption = options.client;
    this.configurationSetName = options.configurationSetName || undefined;
  }

  async send(message: { to: string; subject: string; text: string }): Promise<void> {
    assertSendable(message);
    const { ses, client } = await this.sdk();
    try {
      await client.send(
        new ses.SendEmailCommand({
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

  /** Closes the client's connections; a mailer that never sent has none to close. */
  async destroy(): Promise<void> {
    const loaded = await this.loaded?.catch(() => undefined);
    loaded?.client.destroy();
  }

  /** The SDK and the client, loaded and made on first use (the client given is used as is). */
  private sdk(): Promise<{ ses: SesSdkExports; client: SESv2Client }> {
    this.loaded ??= loadSdk().then((ses) => ({
      ses,
      client: isSesClient(this.clientOption)
        ? this.clientOption
        : new ses.SESv2Client(this.clientOption ?? {}),
    }));
    return this.loaded;
  }
}
