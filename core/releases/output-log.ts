import type { ReleaseLogLine } from '../models.ts';
import { appendLog, type StepContext } from './context.ts';

/** How much of a command's output a release keeps, and how it is written. */
export interface OutputLimits {
  /** Lines kept per run: the first `maxLines - tailLines` and the last `tailLines`. */
  maxLines: number;
  tailLines: number;
  /** Longest line kept, in characters; the rest is cut and the cut said. */
  maxLineLength: number;
  /** Lines written in one transaction at most. */
  batchLines: number;
  /** A partial batch is written after this long, so the live log keeps up with a slow command. */
  flushMs: number;
}

/** A migration printing 100,000 lines keeps 10,000 of them, written ~500 a transaction. */
export const defaultOutputLimits: OutputLimits = {
  maxLines: 10_000,
  tailLines: 1_000,
  maxLineLength: 8 * 1024,
  batchLines: 500,
  flushMs: 200,
};

/**
 * The line with everything past `max` characters replaced by a note of how much was cut.
 * A line a runtime already cut (its own note within the slack) is left as it is.
 */
export function cutLine(line: string, max: number): string {
  if (line.length <= max + cutNoteSlack) return line;
  return `${line.slice(0, max)} … [cut ${new TextEncoder().encode(line.slice(max)).length} bytes]`;
}

const cutNoteSlack = 40;

/**
 * The release log of one command's output: lines are written in batches (a few transactions
 * a second, not one per line), bounded in length and number (the head and the tail are kept,
 * the middle is dropped and counted). `push` returns a promise while a full batch is being
 * written; the runtime waits for it before reading more, which holds the container's output
 * back instead of buffering it here.
 */
export class CommandOutputLog {
  private readonly c: StepContext;
  private readonly stream: ReleaseLogLine['stream'];
  private readonly limits: OutputLimits;
  private batch: string[] = [];
  private headKept = 0;
  private tail: string[] = [];
  private dropped = 0;
  private writing: Promise<void> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private failure: unknown = null;

  constructor(
    c: StepContext,
    stream: ReleaseLogLine['stream'],
    limits: OutputLimits = defaultOutputLimits,
  ) {
    this.c = c;
    this.stream = stream;
    this.limits = limits;
  }

  /** Takes one line; a promise means "wait before the next one" (backpressure). */
  push(line: string): Promise<void> | undefined {
    const kept = cutLine(line, this.limits.maxLineLength);
    if (this.headKept < this.limits.maxLines - this.limits.tailLines) {
      this.headKept++;
      this.batch.push(kept);
    } else {
      // Past the head, only the latest lines are held, so memory stays bounded.
      this.tail.push(kept);
      if (this.tail.length > this.limits.tailLines) {
        this.tail.shift();
        this.dropped++;
      }
      return undefined;
    }
    if (this.batch.length >= this.limits.batchLines) return this.flush();
    // Wall time, not the deps' clock: a test clock that jumps on sleep would skew the release.
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.limits.flushMs);
    return undefined;
  }

  /**
   * Writes what is left: the head's last batch, the note of what was dropped, the tail; and
   * `after`, system lines that follow the command's output, in the same transaction.
   */
  async close(after: string[] = []): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.dropped > 0) {
      this.batch.push(
        `[${this.dropped} lines dropped: a release keeps the first ${this.headKept} and the last ${this.tail.length} lines of a command's output]`,
      );
    }
    this.batch.push(...this.tail);
    this.tail = [];
    await this.flush(after);
    if (this.failure !== null) throw this.failure;
  }

  private flush(after: string[] = []): Promise<void> {
    if (this.batch.length === 0 && after.length === 0) return this.writing;
    const lines = this.batch;
    this.batch = [];
    this.writing = this.writing.then(async () => {
      if (this.failure !== null) return;
      try {
        const size = this.limits.batchLines;
        for (let i = 0; i < lines.length || (i === 0 && after.length > 0); i += size) {
          const last = i + size >= lines.length;
          await appendLog(
            this.c,
            [
              ...lines.slice(i, i + size),
              ...(last ? after.map((line) => ({ line, stream: 'system' as const })) : []),
            ],
            this.stream,
          );
        }
      } catch (e) {
        // The command goes on; the step reports the failed write when it closes the log.
        this.failure = e;
      }
    });
    return this.writing;
  }
}
