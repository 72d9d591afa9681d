import type { Logger } from '../../core/ports.ts';

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string | undefined;
  [key: string]: unknown;
}

/** Keeps log entries in an array for assertions; children share the parent's array. */
export class MemoryLogger implements Logger {
  readonly entries: LogEntry[];
  private readonly bindings: Record<string, unknown>;

  constructor(entries: LogEntry[] = [], bindings: Record<string, unknown> = {}) {
    this.entries = entries;
    this.bindings = bindings;
  }

  private push(level: LogEntry['level'], obj: Record<string, unknown>, msg?: string) {
    this.entries.push({ ...this.bindings, ...obj, level, msg });
  }
  debug(obj: Record<string, unknown>, msg?: string): void {
    this.push('debug', obj, msg);
  }
  info(obj: Record<string, unknown>, msg?: string): void {
    this.push('info', obj, msg);
  }
  warn(obj: Record<string, unknown>, msg?: string): void {
    this.push('warn', obj, msg);
  }
  error(obj: Record<string, unknown>, msg?: string): void {
    this.push('error', obj, msg);
  }
  child(bindings: Record<string, unknown>): Logger {
    return new MemoryLogger(this.entries, { ...this.bindings, ...bindings });
  }
}
