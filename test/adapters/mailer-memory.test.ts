import { MemoryMailer } from '../../adapters/mail/memory.ts';
import { runMailerContract } from '../contracts/mailer.case.ts';

runMailerContract({
  make: ({ refuse }) => {
    const mailer = new MemoryMailer({ refuse });
    return { mailer, inbox: () => [...mailer.sent] };
  },
});
