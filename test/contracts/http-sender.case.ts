import { afterEach, describe, expect, it } from 'vitest';
import type { HttpSender } from '../../core/ports.ts';

export interface HttpSenderFixture {
  sender: HttpSender;
  /** A URL the sender can reach; the endpoint behind it answers `status`. */
  url: string;
  answer(status: number): void;
  /** A URL where nothing listens. */
  deadUrl: string;
  received(): { body: string; headers: Record<string, string> }[];
  close(): Promise<void>;
}

/** What every HttpSender does: deliver the body and headers, report the status, never throw. */
export function runHttpSenderContract({ make }: { make: () => Promise<HttpSenderFixture> }) {
  describe('HttpSender contract', () => {
    let f: HttpSenderFixture;
    afterEach(async () => f?.close());

    it('POSTs the body with its headers and reports a 2xx', async () => {
      f = await make();
      const res = await f.sender.post(
        f.url,
        '{"a":1}',
        { 'content-type': 'application/json', 'x-test': 'yes' },
        2_000,
      );
      expect(res).toEqual({ status: 200, error: null });
      expect(f.received()).toHaveLength(1);
      expect(f.received()[0]!.body).toBe('{"a":1}');
      expect(f.received()[0]!.headers['x-test']).toBe('yes');
    });

    it('reports a non-2xx status instead of throwing', async () => {
      f = await make();
      f.answer(503);
      expect(await f.sender.post(f.url, '{}', {}, 2_000)).toEqual({ status: 503, error: null });
    });

    it('reports an endpoint nobody answers on as an error, not a throw', async () => {
      f = await make();
      const res = await f.sender.post(f.deadUrl, '{}', {}, 2_000);
      expect(res.status).toBeNull();
      expect(res.error).toMatch(/ECONNREFUSED/);
    });
  });
}
