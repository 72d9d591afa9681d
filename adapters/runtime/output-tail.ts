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

/** Turns chunks of one stream into whole lines; `end()` flushes a last line without newline. */
export class LineSplitter {
  private rest = '';
  private readonly decoder = new TextDecoder();
  private readonly onLine: (line: string) => void;

  constructor(onLine: (line: string) => void) {
    this.onLine = onLine;
  }

  write(chunk: Uint8Array | string): void {
    const text =
      this.rest +
      (typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true }));
    const parts = text.split('\n');
    this.rest = parts.pop() ?? '';
    for (const part of parts) this.onLine(part.endsWith('\r') ? part.slice(0, -1) : part);
  }

  end(): void {
    const last = this.rest + this.decoder.decode();
    this.rest = '';
    if (last !== '') this.onLine(last);
  }
}
