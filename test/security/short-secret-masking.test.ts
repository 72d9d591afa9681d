/**
 * Hole 10 (accounts): a very short secret value damaged error masking: every `a` in every
 * error became `***`, which wrecked the text and spelled the secret out by its gaps.
 */
import { describe, expect, it } from 'vitest';
import { maskSecrets } from '../../core/releases/context.ts';

const error = 'container exited with code 1: cannot connect to database at db:5432';

describe('masking short secret values', () => {
  it('leaves error text whole when a secret is one or two characters', () => {
    expect(maskSecrets(error, ['a'])).toBe(error);
    expect(maskSecrets(error, ['at'])).toBe(error);
  });

  it('masks a short value only where it stands alone', () => {
    expect(maskSecrets(error, ['code'])).toBe(
      'container exited with *** 1: cannot connect to database at db:5432',
    );
    expect(maskSecrets('PGPASSWORD=pw42 rejected; pw42x is not it', ['pw42'])).toBe(
      'PGPASSWORD=*** rejected; pw42x is not it',
    );
    // Regular-expression characters in a value are taken literally.
    expect(maskSecrets('token a.b+c used', ['a.b+c'])).toBe('token *** used');
    expect(maskSecrets('token axb+c used', ['a.b+c'])).toBe('token axb+c used');
  });

  it('still masks a long value everywhere, even inside other text', () => {
    expect(maskSecrets('dsn=postgres://u:hunter2hunter2@db/x', ['hunter2hunter2'])).toBe(
      'dsn=postgres://u:***@db/x',
    );
  });
});
