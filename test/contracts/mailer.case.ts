import { afterEach, describe, expect, it } from 'vitest';
import { MailNotSent } from '../../adapters/mail/mail-rules.ts';
import { InvalidInput } from '../../core/errors.ts';
import type { Mailer } from '../../core/ports.ts';

export interface ReceivedMail {
  to: string;
  subject: string;
  text: string;
}

export interface MailerUnderTest {
  mailer: Mailer;
  /** What reached the other side (the SMTP server, the memory array), in order. */
  inbox: () => Promise<ReceivedMail[]> | ReceivedMail[];
  close?: () => Promise<void>;
}

export interface MailerFixture {
  /** A mailer whose peer turns away the addresses in `refuse`. */
  make: (options: { refuse: string[] }) => Promise<MailerUnderTest> | MailerUnderTest;
}

/** The behaviour every Mailer (SMTP, SES, memory) shares. */
export function runMailerContract({ make }: MailerFixture): void {
  describe('Mailer contract', () => {
    let current: MailerUnderTest | undefined;
    const start = async (refuse: string[] = []) => {
      current = await make({ refuse });
      return current;
    };
    afterEach(async () => {
      await current?.close?.();
      current = undefined;
    });

    it('delivers one message with its recipient, subject and text', async () => {
      const { mailer, inbox } = await start();
      await mailer.send({
        to: 'ops@example.com',
        subject: 'Release rel_1 completed',
        text: 'Release rel_1 of api is live.\nNothing else to do.',
      });
      expect(await inbox()).toEqual([
        {
          to: 'ops@example.com',
          subject: 'Release rel_1 completed',
          text: 'Release rel_1 of api is live.\nNothing else to do.',
        },
      ]);
    });

    it('keeps non-ASCII subjects and text intact', async () => {
      const { mailer, inbox } = await start();
      const message = {
        to: 'zoe@example.com',
        subject: 'Déploiement réussi ✓ 🚀',
        text: 'Grüße — 部署完成\nline two with a long tail '.repeat(4),
      };
      await mailer.send(message);
      expect(await inbox()).toEqual([message]);
    });

    it('delivers messages in order', async () => {
      const { mailer, inbox } = await start();
      await mailer.send({ to: 'a@example.com', subject: 'one', text: '1' });
      await mailer.send({ to: 'b@example.com', subject: 'two', text: '2' });
      expect((await inbox()).map((m) => [m.to, m.subject])).toEqual([
        ['a@example.com', 'one'],
        ['b@example.com', 'two'],
      ]);
    });

    it('rejects, naming the recipient, when the recipient is refused', async () => {
      const { mailer, inbox } = await start(['gone@example.com']);
      const error = await mailer
        .send({ to: 'gone@example.com', subject: 's', text: 't' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MailNotSent);
      expect((error as MailNotSent).recipient).toBe('gone@example.com');
      expect((error as Error).message).toMatch(/^mail to gone@example.com was not sent: /);
      expect(await inbox()).toEqual([]);
      await mailer.send({ to: 'here@example.com', subject: 's', text: 't' });
      expect((await inbox()).map((m) => m.to)).toEqual(['here@example.com']);
    });

    it('refuses a recipient that is not one plain address, naming the field', async () => {
      const { mailer, inbox } = await start();
      for (const to of [
        '',
        'not-an-address',
        'a@example.com, b@example.com',
        'a@example.com;b@example.com',
        'Ops <ops@example.com>',
        'a@example.com\r\nBcc: x@example.com',
      ]) {
        const error = await mailer.send({ to, subject: 's', text: 't' }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidInput);
        expect((error as InvalidInput).details).toEqual({ field: 'to' });
      }
      expect(await inbox()).toEqual([]);
    });

    it('refuses a subject with a line break, naming the field', async () => {
      const { mailer, inbox } = await start();
      await expect(
        mailer.send({ to: 'ops@example.com', subject: 'hi\r\nBcc: x@example.com', text: 't' }),
      ).rejects.toThrow(InvalidInput);
      await expect(
        mailer.send({ to: 'ops@example.com', subject: 'hi\nthere', text: 't' }),
      ).rejects.toThrow('subject must be a string on one line');
      expect(await inbox()).toEqual([]);
    });
  });
}
