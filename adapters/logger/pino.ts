import { pino, type Logger as Pino } from 'pino';
import type { Logger } from '../../core/ports.ts';

/**
 * Field names whose values never reach a log line, wherever they sit in a logged object:
 * a log shipped to a third party must not leak a credential.
 */
export const redactedKeys = [
  'password',
  'passwordHash',
  'token',
  'key',
  'keyHash',
  'secret',
  'sealed',
  'authorization',
  'cookie',
  'value',
  'jwtSecret',
];

// Top level and one level down: every log call pays for each wildcard path, and what
// selfdevop logs is flat (request lines, errors with a message).
const redactPaths = redactedKeys.flatMap((k) => [k, `*.${k}`]);

const redacted = new Set(redactedKeys);

/**
 * True when redaction cannot change `obj`: no redacted key at the top, and no object one
 * level down where a wildcard path could match. Request lines are such objects, and
 * skipping the redactor for them is most of what logging one costs.
 */
function isPlain(obj: Record<string, unknown>): boolean {
  for (const k in obj) {
    if (redacted.has(k)) return false;
    const v = obj[k];
    if (typeof v === 'object' && v !== null) return false;
  }
  return true;
}

/**
 * pino's `isoTime`, remembered for the millisecond it names: a busy API logs several lines
 * a millisecond, and a Date and its ISO string per line were a tenth of what one cost.
 */
let timeMs = Number.NaN;
let timeField = '';
function isoTime(): string {
  const now = Date.now();
  if (now !== timeMs) {
    timeMs = now;
    timeField = `,"time":"${new Date(now).toISOString()}"`;
  }
  return timeField;
}

class PinoLogger implements Logger {
  private readonly log: Pino;
  /** The same logger (bindings, level, stream) without the redactor, for plain objects. */
  private readonly plain: Pino;

  constructor(log: Pino) {
    this.log = log;
    this.plain = log.child({}, { redact: [] });
  }

  debug(obj: Record<string, unknown>, msg?: string): void {
    (isPlain(obj) ? this.plain : this.log).debug(obj, msg);
  }
  info(obj: Record<string, unknown>, msg?: string): void {
    (isPlain(obj) ? this.plain : this.log).info(obj, msg);
  }
  warn(obj: Record<string, unknown>, msg?: string): void {
    (isPlain(obj) ? this.plain : this.log).warn(obj, msg);
  }
  error(obj: Record<string, unknown>, msg?: string): void {
    (isPlain(obj) ? this.plain : this.log).error(obj, msg);
  }
  child(bindings: Record<string, unknown>): Logger {
    return new PinoLogger(this.log.child(bindings));
  }
}

/** JSON lines on stdout (or `destination`), one object per event, secrets redacted. */
export function fromPino(options: {
  level?: string;
  name?: string;
  destination?: { write(line: string): void };
}): Logger {
  const log = pino(
    {
      level: options.level ?? 'info',
      name: options.name ?? 'selfdevop',
      base: { service: options.name ?? 'selfdevop' },
      timestamp: isoTime,
      redact: { paths: redactPaths, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ? (options.destination as unknown as pino.DestinationStream) : undefined,
  );
  return new PinoLogger(log);
}
