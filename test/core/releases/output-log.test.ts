/** CommandOutputLog (hole 8): batches, the head and tail it keeps, and the cuts it says. */
import { describe, expect, it } from 'vitest';
import { cutLine } from '../../../core/releases/output-log.ts';

describe('cutLine', () => {
  it('cuts past the limit and says how many bytes went', () => {
    expect(cutLine('a'.repeat(100), 10)).toBe('aaaaaaaaaa … [cut 90 bytes]');
    expect(cutLine('é'.repeat(100), 10)).toBe(`${'é'.repeat(10)} … [cut 180 bytes]`);
  });

  it('leaves a short line, and a line the runtime already cut, as it is', () => {
    expect(cutLine('short', 10)).toBe('short');
    const already = `${'x'.repeat(10)} … [cut 31449088 bytes]`;
    expect(cutLine(already, 10)).toBe(already);
  });
});
