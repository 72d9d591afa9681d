/**
 * Reads the Engine API's log stream (`GET /containers/{id}/logs?timestamps=1`) as lines: the
 * 8-byte multiplexing header of each frame (stream, length), then each line's RFC 3339
 * timestamp. Pure over an async iterable of chunks, so a test can feed it bytes; pulling the
 * next line pulls the next chunk, which is the backpressure the port promises.
 */
import type { ContainerLogLine, LogLineFilter } from '../../core/ports.ts';

/** A line longer than this many bytes is cut, its rest dropped and the cut marked. */
export const maxLogLineBytes = 8 * 1024;

const streams = { 1: 'stdout', 2: 'stderr' } as const;

/**
 * The Engine stores a line longer than 16 KiB as several partial messages; each arrives
 * as its own frame with its own timestamp, the last one ending with the newline.
 */
const partialMessageBytes = 16 * 1024;
/** A frame is held until it is whole (to read its timestamp); beyond this its bytes are dropped. */
const maxFrameBytes = 64 * 1024;

/** One stream's line being assembled from partial messages. */
interface Pending {
  time: string;
  parts: Buffer[];
  bytes: number;
  cut: boolean;
}

/**
 * Lines of a multiplexed log stream (a container without a TTY, which is every container
 * selfdevop starts): each frame is one stored message, `<RFC 3339 time> <text>`, ending in a
 * newline unless the app wrote none or the message is a partial one of a long line.
 * `tty` reads a raw stream (all of it stdout, split at newlines) instead. With a `filter`,
 * only the lines it keeps are answered, and a whole frame without the filter's literal is
 * stepped over as bytes: no string, no Buffer view, no object for a line that cannot match.
 */
export async function* dockerLogLines(
  chunks: AsyncIterable<Buffer | string>,
  tty = false,
  filter?: LogLineFilter,
): AsyncGenerator<ContainerLogLine> {
  if (tty) {
    yield* ttyLines(chunks, filter);
    return;
  }
  const pending: Partial<Record<'stdout' | 'stderr', Pending>> = {};
  let header = Buffer.alloc(0);
  let frameLeft = 0;
  let frameStream: 'stdout' | 'stderr' | null = 'stdout';
  let frame: Buffer[] = [];
  let frameBytes = 0;
  const lines: ContainerLogLine[] = [];
  const needle = prefilterNeedle(filter);
  // Where the needle next occurs in `hitChunk` (its length when nowhere): one native
  // search covers every frame up to the hit, however many lines lie between.
  let hitChunk: Buffer | null = null;
  let hitAt = 0;
  /** False only when the frame [start, end) of `chunk` surely holds no line the filter keeps. */
  const mayMatch = (
    chunk: Buffer,
    start: number,
    end: number,
    stream: 'stdout' | 'stderr',
  ): boolean => {
    // A long line's partial messages are judged whole, after they are joined.
    if (!needle || end - start >= partialMessageBytes || pending[stream]) return true;
    if (hitChunk !== chunk || hitAt < start) {
      hitChunk = chunk;
      hitAt = chunk.indexOf(needle, start);
      if (hitAt === -1) hitAt = chunk.length;
    }
    return hitAt + needle.length <= end;
  };

  const endFrame = (stream: 'stdout' | 'stderr', data: Buffer) => {
    const complete = data.at(-1) === 0x0a;
    const space = data.indexOf(0x20);
    const time = normalizeTimestamp(
      data.subarray(0, space === -1 ? data.length : space).toString(),
    );
    if (!time) return;
    let message = space === -1 ? Buffer.alloc(0) : data.subarray(space + 1);
    if (complete) message = message.subarray(0, message.length - 1);
    const p = (pending[stream] ??= { time, parts: [], bytes: 0, cut: false });
    const room = maxLogLineBytes - p.bytes;
    if (message.length > room) {
      if (room > 0) p.parts.push(message.subarray(0, room));
      p.bytes = maxLogLineBytes;
      p.cut = true;
    } else {
      p.parts.push(message);
      p.bytes += message.length;
    }
    // A partial message of a long line: the next frame of this stream continues it.
    if (!complete && message.length >= partialMessageBytes) return;
    const line = toLine(stream, p);
    delete pending[stream];
    if (!filter || filter.test(line.text)) lines.push(line);
  };

  for await (const raw of chunks) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    // An offset, not a re-sliced Buffer per frame: stepping over a frame allocates nothing.
    let pos = 0;
    while (pos < chunk.length) {
      // Fast path: a whole frame, header and all, inside this chunk (nearly every frame).
      if (frameLeft === 0 && header.length === 0 && chunk.length - pos >= 8) {
        const end = pos + 8 + chunk.readUInt32BE(pos + 4);
        if (end <= chunk.length) {
          const stream = streams[chunk[pos] as 1 | 2];
          if (stream && mayMatch(chunk, pos + 8, end, stream))
            endFrame(stream, chunk.subarray(pos + 8, end));
          pos = end;
          continue;
        }
      }
      if (frameLeft === 0) {
        const need = 8 - header.length;
        header = Buffer.concat([header, chunk.subarray(pos, pos + need)]);
        pos += need;
        if (header.length < 8) break;
        frameStream = streams[header[0] as 1 | 2] ?? null; // 0 (stdin) or unknown: skipped
        frameLeft = header.readUInt32BE(4);
        header = Buffer.alloc(0);
        frame = [];
        frameBytes = 0;
        continue;
      }
      const take = Math.min(frameLeft, chunk.length - pos);
      const body = chunk.subarray(pos, pos + take);
      pos += take;
      frameLeft -= take;
      if (frameBytes < maxFrameBytes) {
        const kept = body.subarray(0, maxFrameBytes - frameBytes);
        frame.push(kept);
        frameBytes += kept.length;
      }
      if (frameLeft === 0 && frameStream) endFrame(frameStream, Buffer.concat(frame));
    }
    for (let k = 0; k < lines.length; k++) yield lines[k]!;
    lines.length = 0;
  }
  // The stream ended inside a long line: what came of it is still a line.
  for (const stream of ['stdout', 'stderr'] as const) {
    const p = pending[stream];
    if (!p) continue;
    const line = toLine(stream, p);
    if (!filter || filter.test(line.text)) yield line;
  }
}

/**
 * The filter's literal as bytes, when a frame's bytes may be judged by it: the text of a
 * line is its bytes decoded, except that a cut line gains `…` and an invalid byte becomes
 * U+FFFD, so a literal holding either is left to `test`.
 */
function prefilterNeedle(filter: LogLineFilter | undefined): Buffer | null {
  const literal = filter?.literal;
  if (!literal || /[\u2026\uFFFD]/.test(literal)) return null;
  return Buffer.from(literal, 'utf8');
}

function toLine(stream: 'stdout' | 'stderr', p: Pending): ContainerLogLine {
  let text = Buffer.concat(p.parts).toString('utf8');
  if (text.endsWith('\r')) text = text.slice(0, -1);
  // A cut through a multi-byte character leaves U+FFFD at the end: dropped before the mark.
  if (p.cut) text = `${text.replace(/\uFFFD$/, '')}…`;
  return { time: p.time, stream, text };
}

/** A TTY container's raw output: lines at newlines, each with its timestamp prefix. */
async function* ttyLines(
  chunks: AsyncIterable<Buffer | string>,
  filter?: LogLineFilter,
): AsyncGenerator<ContainerLogLine> {
  let rest = Buffer.alloc(0);
  for await (const raw of chunks) {
    rest = Buffer.concat([rest, typeof raw === 'string' ? Buffer.from(raw) : raw]);
    let nl: number;
    while ((nl = rest.indexOf(0x0a)) !== -1) {
      const line = parseLine('stdout', rest.subarray(0, nl).toString('utf8'));
      rest = rest.subarray(nl + 1);
      if (line && (!filter || filter.test(line.text))) yield line;
    }
    if (rest.length > maxFrameBytes) rest = rest.subarray(0, maxFrameBytes);
  }
  const last = rest.length ? parseLine('stdout', rest.toString('utf8')) : null;
  if (last && (!filter || filter.test(last.text))) yield last;
}

/** `2026-12-02T13:27:47.123456789Z text` → a line; null when the prefix is not a time. */
function parseLine(stream: 'stdout' | 'stderr', s: string): ContainerLogLine | null {
  const space = s.indexOf(' ');
  const time = normalizeTimestamp(space === -1 ? s : s.slice(0, space));
  if (!time) return null;
  const text = space === -1 ? '' : s.slice(space + 1);
  return {
    time,
    stream,
    text:
      text.length > maxLogLineBytes
        ? `${text.slice(0, maxLogLineBytes)}…`
        : text.replace(/\r$/, ''),
  };
}

/**
 * An RFC 3339 time with any fraction (Docker trims trailing zeros in some versions) → UTC
 * with exactly 9 fraction digits, so two lines compare as strings; null when it is not one.
 */
export function normalizeTimestamp(stamp: string): string | null {
  // The Engine's own form (RFC3339NanoFixed in UTC) is already the answer.
  if (stamp.length === 30 && stamp[29] === 'Z' && stamp[19] === '.' && stamp[10] === 'T')
    return stamp;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(stamp);
  if (!m) return null;
  const fraction = (m[2] ?? '').padEnd(9, '0');
  if (m[3] === 'Z') return `${m[1]}.${fraction}Z`;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return null;
  return `${new Date(ms).toISOString().slice(0, 19)}.${fraction}Z`;
}

/** ISO 8601 (up to 9 fraction digits) → the Engine's `since`/`until` form, `seconds.nanos`. */
export function engineTimestamp(iso: string): string {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(iso);
  if (!m) return String(Math.floor(Date.parse(iso) / 1000));
  const seconds = Math.floor(Date.parse(`${m[1]}${m[3]}`) / 1000);
  return `${seconds}.${(m[2] ?? '').padEnd(9, '0')}`;
}
