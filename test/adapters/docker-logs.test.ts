import { describe, expect, it } from 'vitest';
import type { LogLineFilter } from '../../core/ports.ts';
import { lineFilter } from '../../core/services/log-search.ts';
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

async function lines(chunks: Buffer[], filter?: LogLineFilter) {
  async function* source() {
    for (const c of chunks) yield c;
  }
  const out = [];
  for await (const l of dockerLogLines(source(), false, filter)) out.push(l);
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

  it('answers only the lines a search keeps, at any cut, and never misses one the bytes hold', async () => {
    const part = 'y'.repeat(16 * 1024);
    const bytes = Buffer.concat([
      frame(1, `${t1} GET /a status=200\n`),
      frame(2, `${t1} GET /b status=500\n`),
      // The literal straddles two frames: neither holds it, so neither is a match.
      frame(1, `${t1} status`),
      frame(1, `${t2} =500\n`),
      // A long line whose match is in its second partial message.
      frame(1, `${t2} ${part}`),
      frame(1, `${t2} status=500 long\n`),
      frame(1, `${t2} status=500\n`),
    ]);
    const substring = lineFilter('status=500', {});
    const expected = [
      { time: t1, stream: 'stderr', text: 'GET /b status=500' },
      { time: t2, stream: 'stdout', text: `${'y'.repeat(maxLogLineBytes)}…` },
      { time: t2, stream: 'stdout', text: 'status=500' },
    ];
    // The long line is cut before its match: the search tests the text it answers (cut),
    // the same as without the byte skip.
    expect(await lines([bytes], substring)).toEqual([expected[0], expected[2]]);
    for (let cut = 1; cut < bytes.length; cut += 97)
      expect(await lines([bytes.subarray(0, cut), bytes.subarray(cut)], substring)).toEqual([
        expected[0],
        expected[2],
      ]);
    // What the byte skip answers is what testing every decoded line answers.
    const all = await lines([bytes]);
    for (const f of [
      substring,
      lineFilter('status=5\\d\\d$', { regex: true }),
      lineFilter('STATUS', { ignoreCase: true }),
    ])
      expect(await lines([bytes], f)).toEqual(all.filter((l) => f.test(l.text)));
    // A literal a cut line gains (the mark) is left to the test, not to the bytes.
    expect(await lines([bytes], lineFilter('…', {}))).toEqual([expected[1]]);
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
