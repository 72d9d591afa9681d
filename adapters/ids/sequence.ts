import type { IdGenerator } from '../../core/ports.ts';

/** Predictable ids for tests that compare plans by exact equality. */
export class SequenceIds implements IdGenerator {
  private n = 0;

  newId(prefix: string): string {
    return `${prefix}_${String(++this.n).padStart(6, '0')}`;
  }

  newSecret(bytes: number): string {
    return `secret${++this.n}`.padEnd(Math.ceil((bytes * 4) / 3), 'x');
  }
}
