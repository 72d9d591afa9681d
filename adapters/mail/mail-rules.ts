import { InvalidInput } from '../../core/errors.ts';

// One plain address, no display name: a comma, semicolon or angle bracket could smuggle
// in extra recipients, and CR/LF could smuggle in headers.
const plainAddress =
  /^[^\s@<>,;:"()[\]\\]+@[^\s@<>,;:"()[\]\\]+\.[^\s@<>,;:"()[\]\\]+$|^[^\s@<>,;:"()[\]\\]+@localhost$/;
const maxAddressLength = 254;

/** True when value is exactly one plain e-mail address such as `ops@example.com`. */
export function isPlainAddress(value: unknown): value is string {
  return typeof value === 'string' && value.length <= maxAddressLength && plainAddress.test(value);
}

/** The mail could not be handed over; names the recipient, never the body. */
export class MailNotSent extends Error {
  readonly recipient: string;
  constructor(recipient: string, reason: string, options?: { cause?: unknown }) {
    super(`mail to ${recipient} was not sent: ${reason}`, options);
    this.name = 'MailNotSent';
    this.recipient = recipient;
  }
}

/** Throws InvalidInput naming the field when the message cannot be sent as it is. */
export function assertSendable(message: { to: string; subject: string; text: string }): void {
  if (!isPlainAddress(message.to)) {
    throw new InvalidInput(
      `to must be one plain e-mail address (like ops@example.com), got ${JSON.stringify(message.to)}`,
      { field: 'to' },
    );
  }
  if (typeof message.subject !== 'string' || /[\r\n]/.test(message.subject)) {
    throw new InvalidInput('subject must be a string on one line', { field: 'subject' });
  }
  if (typeof message.text !== 'string')
    throw new InvalidInput('text must be a string', { field: 'text' });
}
