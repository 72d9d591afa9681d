import { describe, expect, it } from 'vitest';
import { assertHostname, isApex } from '../../../core/domains/hostname.ts';
import { isCoreError } from '../../../core/errors.ts';

const opts = { edgeDomain: 'apps.selfdevop.dev' };
const refusal = (h: unknown) => {
  try {
    assertHostname(h, opts);
    return null;
  } catch (e) {
    if (!isCoreError(e)) throw e;
    return { code: e.code, field: (e.details as { field: string }).field, message: e.message };
  }
};

describe('assertHostname', () => {
  it.each([
    'shop.example.com',
    'example.com',
    'a.b.c.example.co.uk',
    'xn--bcher-kva.example',
    'a1-b2.example.io',
    `${'a'.repeat(63)}.example.com`,
  ])('accepts %s', (h) => expect(assertHostname(h, opts)).toBe(h));

  it.each([
    ['', /empty/],
    ['localhost', /two labels|loopback/],
    ['com', /two labels/],
    ['*.example.com', /wildcard/],
    ['Shop.Example.com', /lowercase/],
    ['shop.example.com.', /dot/],
    ['127.0.0.1', /IP address/],
    ['[::1]', /IP address/],
    ['::1', /IP address/],
    ['shop.123', /numeric/],
    ['-shop.example.com', /a-z/],
    ['shop-.example.com', /a-z/],
    ['shop..example.com', /a-z/],
    ['shop_x.example.com', /a-z/],
    ['shop.example.com/path', /a-z/],
    ['shop.example.com:443', /IP address|a-z/],
    ['shop.example.com"}],"x":[{"', /a-z/],
    ['shop example.com', /a-z/],
    ['app.localhost', /loopback/],
    ['apps.selfdevop.dev', /edge domain/],
    ['web-production-abc123.apps.selfdevop.dev', /edge domain/],
    [`${'a'.repeat(64)}.example.com`, /63/],
    [`${'abcdefghi.'.repeat(26)}com`, /253/],
  ])('refuses %j with 400 naming hostname', (h, why) => {
    const r = refusal(h);
    expect(r).toMatchObject({ code: 'invalid_input', field: 'hostname' });
    expect(r!.message).toMatch(/^hostname: /);
    expect(r!.message).toMatch(why);
  });

  it('refuses what is not a string', () => {
    expect(refusal(42)).toMatchObject({ field: 'hostname' });
    expect(refusal(null)).toMatchObject({ field: 'hostname' });
  });

  it('allows names that merely contain the edge domain as a substring', () => {
    expect(assertHostname('notapps.selfdevop.dev.example.com', opts)).toBe(
      'notapps.selfdevop.dev.example.com',
    );
    expect(assertHostname('myapps.selfdevop.dev', { edgeDomain: 'apps.selfdevop.dev' })).toBe(
      'myapps.selfdevop.dev',
    );
  });

  it('tells an apex from a subdomain by its label count', () => {
    expect(isApex('example.com')).toBe(true);
    expect(isApex('shop.example.com')).toBe(false);
  });
});
