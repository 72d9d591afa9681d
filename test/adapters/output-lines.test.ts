/**
 * The runtime's output plumbing (hole 8): lines are cut as they arrive, Docker's frames are
 * split without gathering a payload whole, and a slow sink holds the source back.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DemuxedLines, LineSplitter } from '../../adapters/runtime/output-tail.ts';

const frame = (stream: 1 | 2, text: string) => {
  const body = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
};

describe('LineSplitter', () => {
  it('cuts a long line as it arrives and says how much was cut', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), 10);
    for (let i = 0; i < 1000; i++) s.write('x'.repeat(1000));
    s.write('\nshort\r\nlast');
    s.end();
    expect(lines).toEqual(['xxxxxxxxxx … [cut 999990 bytes]', 'short', 'last']);
  });
});

describe('DemuxedLines', () => {
  it('splits stdout and stderr frames, across chunk boundaries', async () => {
    const got: string[] = [];
    const sink = new DemuxedLines((line, stream) => void got.push(`${stream}:${line}`));
    const all = Buffer.concat([frame(1, 'a\nb'), frame(2, 'oops\n'), frame(1, 'c\n')]);
    for (let i = 0; i < all.length; i += 3) sink.write(all.subarray(i, i + 3));
    await new Promise<void>((resolve) => sink.end(resolve));
    expect(got).toEqual(['stdout:a', 'stderr:oops', 'stdout:bc']);
  });

  it('holds the source back while the sink is slow', async () => {
    let release!: () => void;
    let taken = 0;
    const sink = new DemuxedLines(() => {
      taken++;
      if (taken === 1) return new Promise<void>((r) => (release = r));
    });
    const source = new PassThrough();
    source.pipe(sink);
    const chunk = frame(1, 'line\n'.repeat(1000));
    let accepted = 0;
    for (let i = 0; i < 1000 && source.write(chunk); i++) accepted++;
    await new Promise((r) => setTimeout(r, 50));
    // One line is being taken; the rest waits in bounded stream buffers, not in the sink.
    expect(taken).toBe(1);
    expect(accepted).toBeLessThan(100);
    release();
    source.end();
    await new Promise<void>((resolve) => sink.once('finish', resolve));
    expect(taken).toBe((accepted + 1) * 1000);
  });
});
