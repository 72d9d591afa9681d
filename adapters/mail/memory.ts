import type { Mailer } from '../../core/ports.ts';
import { MailNotSent, assertSendable } from './mail-rules.ts';

export interface SentMail {
  to: string;
  subject: string;
  text: string;
}

/** Keeps sent mail in `sent`, for tests; `refuse` lists recipients to turn away as a server would. */
export class MemoryMailer implements Mailer {
  readonly sent: SentMail[] = [];
  private readonly refuse: Set<string>;

  constructor(options: { refuse?: string[] } = {}) {
    this.refuse = new Set((options.refuse ?? []).map((address) => address.toLowerCase()));
  }

  async send(message: { to: string; subject: string; text: string }): Promise<void> {
    assertSendable(message);
    if (this.refuse.has(message.to.toLowerCase())) {
      throw new MailNotSent(message.to, '550 mailbox unavailable (refused by the memory mailer)');
    }
    this.sent.push({ to: message.to, subject: message.subject, text: message.text });
  }
}
