import { Writable } from 'node:stream';

/** Keeps the last `maxBytes` of a one-off's output, so a chatty migration cannot eat memory. */
export class OutputTail {
  private readonly lines: string[] = [];
  private bytes = 0;
  private dropped = false;
  private readonly maxBytes: number;

  constructor(maxBytes = 64 * 1024) {
    this.maxBytes = maxBytes;
  }

  push(line: string): void {
    this.lines.push(line);
    this.bytes += Buffer.byteLength(line) + 1;
    while (this.bytes > this.maxBytes && this.lines.length > 1) {
      const first = this.lines.shift() ?? '';
      this.bytes -= Buffer.byteLength(first) + 1;
      this.dropped = true;
    }
  }

  toString(): string {
    return (this.dropped ? ['[earlier output truncated]', ...this.lines] : this.lines).join('\n');
  }
}

/** A line longer than this is cut (and the cut said) before it is kept anywhere; 8 KiB. */
export const defaultMaxLineLength = 8 * 1024;

/**
 * Turns chunks of one stream into whole lines; `end()` flushes a last line without newline.
 * A line is cut after `maxLineLength` characters as it arrives, so one 30 MB line never
 * sits in memory whole; the line then ends with `… [cut N bytes]`.
 */
export class LineSplitter {
  private rest = '';
  private cutBytes = 0;
  private readonly decoder = new TextDecoder();
  private readonly onLine: (line: string) => void;
  private readonly maxLineLength: number;

  constructor(onLine: (line: string) => void, maxLineLength = defaultMaxLineLength) {
    this.onLine = onLine;
    this.maxLineLength = maxLineLength;
  }

  write(chunk: Uint8Array | string): void {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n')) {
      this.add(text.slice(0, nl));
      this.emit();
      text = text.slice(nl + 1);
    }
    this.add(text);
  }

  end(): void {
    this.add(this.decoder.decode());
    if (this.rest !== '' || this.cutBytes > 0) this.emit();
  }

  private add(part: string): void {
    const room = this.maxLineLength - this.rest.length;
    if (part.length <= room) {
      this.rest += part;
      return;
    }
    if (room > 0) this.rest += part.slice(0, room);
    this.cutBytes += Buffer.byteLength(room > 0 ? part.slice(room) : part);
  }

  private emit(): void {
    let line = this.rest.endsWith('\r') ? this.rest.slice(0, -1) : this.rest;
    if (this.cutBytes > 0) line += ` … [cut ${this.cutBytes} bytes]`;
    this.rest = '';
    this.cutBytes = 0;
    this.onLine(line);
  }
}

/**
 * Takes Docker's multiplexed output (8-byte frame headers: stream, 0, 0, 0, length) and hands
 * each line to `onLine`, awaiting it: the write is acknowledged only once every line in it
 * was taken, so a piped source pauses while the sink is slow (backpressure to the engine).
 * Frame payloads are passed on as they arrive, never gathered whole.
 */
export class DemuxedLines extends Writable {
  private readonly pending: { line: string; stream: 'stdout' | 'stderr' }[] = [];
  private readonly splitters: Record<'stdout' | 'stderr', LineSplitter>;
  private readonly onLine: (line: string, stream: 'stdout' | 'stderr') => void | Promise<void>;
  private header = Buffer.alloc(0);
  private current: 'stdout' | 'stderr' = 'stdout';
  private remaining = 0;
  /** Not multiplexed after all (a TTY): everything is stdout from here on. */
  private raw = false;
  /** When output last arrived (ms since the epoch), so a reader can tell a drained stream. */
  lastWriteAt = Date.now();

  constructor(
    onLine: (line: string, stream: 'stdout' | 'stderr') => void | Promise<void>,
    maxLineLength = defaultMaxLineLength,
  ) {
    super();
    this.onLine = onLine;
    const to = (stream: 'stdout' | 'stderr') => (line: string) =>
      this.pending.push({ line, stream });
    this.splitters = {
      stdout: new LineSplitter(to('stdout'), maxLineLength),
      stderr: new LineSplitter(to('stderr'), maxLineLength),
    };
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (e?: Error) => void): void {
    this.lastWriteAt = Date.now();
    this.take(chunk);
    this.deliver().then(() => callback(), callback);
  }

  override _final(callback: (e?: Error) => void): void {
    this.splitters.stdout.end();
    this.splitters.stderr.end();
    this.deliver().then(() => callback(), callback);
  }

  private take(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.raw) {
        this.splitters.stdout.write(chunk.subarray(at));
        return;
      }
      if (this.remaining === 0) {
        const need = 8 - this.header.length;
        this.header = Buffer.concat([this.header, chunk.subarray(at, at + need)]);
        at += Math.min(need, chunk.length - at);
        if (this.header.length < 8) return;
        const type = this.header[0];
        if (type !== 0 && type !== 1 && type !== 2) {
          this.raw = true;
          this.splitters.stdout.write(this.header);
          this.header = Buffer.alloc(0);
          continue;
        }
        this.current = type === 2 ? 'stderr' : 'stdout';
        this.remaining = this.header.readUInt32BE(4);
        this.header = Buffer.alloc(0);
        continue;
      }
      const end = Math.min(chunk.length, at + this.remaining);
      this.splitters[this.current].write(chunk.subarray(at, end));
      this.remaining -= end - at;
      at = end;
    }
  }

  private async deliver(): Promise<void> {
    for (const { line, stream } of this.pending.splice(0)) {
      try {
        await this.onLine(line, stream);
      } catch {
        // A failing log sink must not fail or hang the one-off itself.
      }
    }
  }
}
