import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import type { Mailer } from '../../core/ports.ts';
import { MailNotSent, assertSendable, isPlainAddress } from './mail-rules.ts';

export interface SmtpMailerOptions {
  /** The value of SMTP_URL: `smtp://[user:pass@]host[:port]` (STARTTLS when offered) or `smtps://…` (TLS from the start). */
  url: string;
  /** The value of MAIL_FROM: the sender address, e.g. `selfdevop@example.com`. */
  from: string;
  /** Bound on connecting, the greeting and each reply; 15 s unless set. */
  timeoutMs?: number;
}

export const defaultSmtpTimeoutMs = 15_000;

/** The URL with any password hidden, for error messages and logs. */
function redact(url: URL): string {
  const copy = new URL(url);
  if (copy.password) copy.password = '***';
  return copy.toString();
}

/**
 * Self-hosted Mailer: plain-text mail over SMTP with nodemailer, one connection per message
 * (mail is rare: release and domain notifications).
 *
 * @example new SmtpMailer({ url: config.SMTP_URL, from: config.MAIL_FROM })
 */
export class SmtpMailer implements Mailer {
  readonly from: string;
  private readonly transport: Transporter;
  private readonly server: string;

  constructor(options: SmtpMailerOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new Error(
        'SMTP_URL must be a URL like smtp://user:pass@mail.example.com:587; it is not a URL',
      );
    }
    if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
      throw new Error(
        `SMTP_URL must start with smtp:// or smtps://, got ${url.protocol}// (${redact(url)})`,
      );
    }
    if (!url.hostname) throw new Error(`SMTP_URL must name a host (${redact(url)})`);
    if (!isPlainAddress(options.from)) {
      throw new Error(
        `MAIL_FROM must be one plain e-mail address (like selfdevop@example.com), got ${JSON.stringify(options.from)}`,
      );
    }
    const timeout = options.timeoutMs ?? defaultSmtpTimeoutMs;
    this.from = options.from;
    this.server = `${url.hostname}:${url.port || (url.protocol === 'smtps:' ? 465 : 25)}`;
    this.transport = nodemailer.createTransport({
      url: options.url,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
    });
  }

  async send(message: { to: string; subject: string; text: string }): Promise<void> {
    assertSendable(message);
    try {
      // With one recipient, a refused RCPT TO rejects the whole send, so no partial result.
      await this.transport.sendMail({
        from: this.from,
        to: message.to,
        subject: message.subject,
        text: message.text,
      });
    } catch (e) {
      throw new MailNotSent(message.to, `SMTP server ${this.server}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  close(): void {
    this.transport.close();
  }
}
