/**
 * Rewrites a tar stream as it passes (what `git archive` writes: ustar with pax headers):
 * entries a predicate excludes are dropped, extra files are added before the end, and file
 * content beyond a cap fails the stream. Entry data is passed through in the chunks it came
 * in, never held whole: only headers (and pax records, small) are buffered.
 */
import { SourceTooLarge } from '../../core/builds/errors.ts';

const block = 512;
const maxPaxBytes = 1024 * 1024;

export interface TarFilterOptions {
  exclude?: (path: string) => boolean;
  extra?: Record<string, string>;
  maxBytes?: number;
}

const field = (h: Buffer, start: number, length: number): string => {
  const end = h.indexOf(0, start);
  return h.toString('utf8', start, end === -1 || end > start + length ? start + length : end);
};

function sizeOf(h: Buffer): number {
  // Base-256 for sizes beyond 8 GiB (GNU); octal otherwise.
  if ((h[124]! & 0x80) !== 0) {
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + h[i]!;
    return n;
  }
  return parseInt(field(h, 124, 12).trim() || '0', 8);
}

const padded = (size: number) => Math.ceil(size / block) * block;

function paxPath(data: Buffer): string | null {
  let at = 0;
  let path: string | null = null;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const len = parseInt(data.toString('utf8', at, space), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const record = data.toString('utf8', space + 1, at + len - 1);
    const eq = record.indexOf('=');
    if (eq !== -1 && record.slice(0, eq) === 'path') path = record.slice(eq + 1);
    at += len;
  }
  return path;
}

/** A ustar header of a regular file (mode 0644, owner 0, time 0 so its bytes never vary). */
export function fileHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(block);
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long: ${name}`);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 8, 'ascii');
  h.write('0000000\0', 108, 8, 'ascii');
  h.write('0000000\0', 116, 8, 'ascii');
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 12, 'ascii');
  h.write('00000000000\0', 136, 12, 'ascii');
  h.write('        ', 148, 8, 'ascii');
  h.write('0', 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

function* extraEntries(extra: Record<string, string>): Generator<Buffer> {
  for (const [name, text] of Object.entries(extra)) {
    const data = Buffer.from(text, 'utf8');
    yield fileHeader(name, data.length);
    yield Buffer.concat([data, Buffer.alloc(padded(data.length) - data.length)]);
  }
}

export async function* filterTar(
  input: AsyncIterable<Uint8Array>,
  options: TarFilterOptions,
): AsyncGenerator<Uint8Array> {
  const exclude = options.exclude ?? (() => false);
  let buf = Buffer.alloc(0);
  /** Bytes of the current entry's data (with padding) still to pass or skip. */
  let remaining = 0;
  let passing = false;
  let pendingPax: Buffer | null = null;
  let pendingPath: string | null = null;
  let contentBytes = 0;
  let ended = false;

  for await (const chunk of input) {
    if (ended) continue; // what follows the end blocks is padding
    buf = buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([buf, chunk]);
    for (;;) {
      if (remaining > 0) {
        if (buf.length === 0) break;
        const take = Math.min(remaining, buf.length);
        if (passing) yield buf.subarray(0, take);
        buf = buf.subarray(take);
        remaining -= take;
        continue;
      }
      if (buf.length < block) break;
      const header = buf.subarray(0, block);
      if (header.every((b) => b === 0)) {
        ended = true;
        break;
      }
      const type = String.fromCharCode(header[156]!);
      const size = sizeOf(header);
      if (type === 'x' || type === 'g') {
        if (size > maxPaxBytes) throw new Error(`a pax header of ${size} bytes in the archive`);
        const whole = block + padded(size);
        if (buf.length < whole) break;
        const entry = Buffer.from(buf.subarray(0, whole));
        buf = buf.subarray(whole);
        if (type === 'g') yield entry;
        else {
          pendingPax = entry;
          pendingPath = paxPath(entry.subarray(block, block + size));
        }
        continue;
      }
      const prefix = field(header, 345, 155);
      const short = field(header, 0, 100);
      const name = (pendingPath ?? (prefix ? `${prefix}/${short}` : short)).replace(/\/+$/, '');
      const keep = name === '' || name === '.' || !exclude(name);
      if (keep) {
        if (type === '0' || type === '\0' || type === '7') {
          contentBytes += size;
          if (options.maxBytes !== undefined && contentBytes > options.maxBytes)
            throw new SourceTooLarge(contentBytes, options.maxBytes);
        }
        if (pendingPax) yield pendingPax;
        yield Buffer.from(header);
      }
      pendingPax = null;
      pendingPath = null;
      buf = buf.subarray(block);
      remaining = padded(size);
      passing = keep;
    }
  }
  if (!ended) throw new Error('the archive ended before its end blocks');
  yield* extraEntries(options.extra ?? {});
  yield Buffer.alloc(block * 2);
}
