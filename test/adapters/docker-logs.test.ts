import { describe, expect, it } from 'vitest';
import {
  dockerLogLines,
  engineTimestamp,
  maxLogLineBytes,
  normalizeTimestamp,
} from '../../adapters/runtime/docker-logs.ts';

/** One Engine API frame: stream byte, three zeros, the payload's length, the payload. */
const frame = (stream: 1 | 2, payload: string | Buffer) => {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
};
const t1 = '2026-12-02T13:27:47.123456789Z';
const t2 = '2026-12-02T13:27:48.000000001Z';

async function lines(chunks: Buffer[]) {
  async function* source() {
    for (const c of chunks) yield c;
  }
  const out = [];
  for await (const l of dockerLogLines(source())) out.push(l);
  return out;
}

describe('the Engine log stream as lines', () => {
  const bytes = Buffer.concat([
    frame(1, `${t1} hello\n`),
    frame(2, `${t1} oops\n`),
    frame(1, `${t2} no newline`),
    frame(1, `${t2} ünïcode ✓\n`),
  ]);
  const expected = [
    { time: t1, stream: 'stdout', text: 'hello' },
    { time: t1, stream: 'stderr', text: 'oops' },
    { time: t2, stream: 'stdout', text: 'no newline' },
    { time: t2, stream: 'stdout', text: 'ünïcode ✓' },
  ];

  it('reads frames whole or cut at any byte', async () => {
    expect(await lines([bytes])).toEqual(expected);
    for (let cut = 1; cut < bytes.length; cut++)
      expect(await lines([bytes.subarray(0, cut), bytes.subarray(cut)])).toEqual(expected);
    expect(await lines([...bytes].map((b) => Buffer.from([b])))).toEqual(expected);
  });

  it('joins the partial messages of a long line and cuts it at the bound, marked', async () => {
    const part = 'x'.repeat(16 * 1024);
    const out = await lines([
      frame(1, `${t1} ${part}`),
      frame(1, `${t1} ${part}`),
      frame(1, `${t1} tail\n`),
      frame(1, `${t2} next\n`),
    ]);
    expect(out).toHaveLength(2);
    expect(out[0]!.text).toBe(`${'x'.repeat(maxLogLineBytes)}…`);
    expect(out[1]).toEqual({ time: t2, stream: 'stdout', text: 'next' });
  });

  it('normalizes times to 9 fraction digits in UTC and back to the Engine form', () => {
    expect(normalizeTimestamp('2026-12-02T13:27:47.1Z')).toBe('2026-12-02T13:27:47.100000000Z');
    expect(normalizeTimestamp('2026-12-02T13:27:47Z')).toBe('2026-12-02T13:27:47.000000000Z');
    expect(normalizeTimestamp('2026-12-02T14:27:47.5+01:00')).toBe(
      '2026-12-02T13:27:47.500000000Z',
    );
    expect(normalizeTimestamp('not-a-time')).toBeNull();
    expect(engineTimestamp('2026-12-02T13:27:47.000000001Z')).toBe('1796218067.000000001');
  });
});
