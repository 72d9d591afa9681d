import { MemoryHttpSender } from '../../adapters/http/memory.ts';
import { runHttpSenderContract } from '../contracts/http-sender.case.ts';

runHttpSenderContract({
  make: async () => {
    let status = 200;
    const sender = new MemoryHttpSender((r) => (r.url.includes(':1/') ? null : status));
    return {
      sender,
      url: 'http://receiver.test/hook',
      deadUrl: 'http://127.0.0.1:1/hook',
      answer: (s) => (status = s),
      received: () => sender.sent.filter((r) => !r.url.includes(':1/')),
      close: async () => undefined,
    };
  },
});
