import { describe, expect, it } from 'vitest';
import { isCoreError } from '../../../core/errors.ts';
import { lineFilter, lineMatcher, maxPatternLength } from '../../../core/services/log-search.ts';

const re = (pattern: string, ignoreCase = false) =>
  lineMatcher(pattern, { regex: true, ignoreCase });

/** The message of the InvalidInput the pattern is refused with. */
function refusal(pattern: string): string {
  try {
    re(pattern);
  } catch (e) {
    expect(isCoreError(e) && e.code).toBe('invalid_input');
    return (e as Error).message;
  }
  throw new Error(`${pattern} was accepted`);
}

describe('log search', () => {
  it('is a plain substring by default: regex characters mean themselves', () => {
    const m = lineMatcher('GET /a.b?(x)', {});
    expect(m('x GET /a.b?(x) 200')).toBe(true);
    expect(m('x GET /aXb?(x) 200')).toBe(false);
    expect(lineMatcher('error', { ignoreCase: true })('An ERROR here')).toBe(true);
    expect(lineMatcher('error', {})('An ERROR here')).toBe(false);
  });

  it('agrees with JavaScript regular expressions on the supported syntax', () => {
    const patterns = [
      'a+b',
      '^GET /api/[a-z]+ 5\\d\\d$',
      '(foo|bar)baz',
      'x{2,3}y',
      'x{2}',
      'x{2,}',
      '[^ ]+ ms',
      '\\w+@\\w+\\.com',
      'colou?r',
      '(?:ab)*c',
      '.*',
      '^$',
      'a.c',
      '[\\d.]+s',
      'a|b|c',
      '\\[warn\\]',
      'a*?b',
    ];
    const lines = [
      '',
      'ab',
      'aab',
      'GET /api/users 503',
      'GET /api/users 200',
      ' GET /api/x 500',
      'foobaz',
      'barbaz',
      'bazbar',
      'xxy',
      'xy',
      'xxxxy',
      'took 12 ms',
      'mail me@host.com now',
      'color',
      'colour',
      'ababc',
      'abc',
      'a\nc',
      '[warn] low disk',
      '1.5s',
      'c',
    ];
    for (const p of patterns)
      for (const line of lines)
        expect([p, line, re(p)(line)]).toEqual([p, line, new RegExp(p).test(line)]);
  });

  it('ignores case when asked, in literals, ranges and classes', () => {
    expect(re('error [a-c]+', true)('ERROR ABC')).toBe(true);
    expect(re('ERROR', true)('an error')).toBe(true);
    expect(re('error')('ERROR')).toBe(false);
  });

  it('runs (a+)+$ over a long non-matching line in linear time, where a backtracking engine would not return', () => {
    const line = `${'a'.repeat(8 * 1024)}!`;
    // A backtracking engine needs about 2^8192 steps for this line; the NFA needs 8193
    // positions times a handful of states. The test would not end if it backtracked.
    expect(re('(a+)+$')(line)).toBe(false);
    expect(re('(a+)+$')('aaaa')).toBe(true);
    expect(re('(a|aa)*b')('a'.repeat(5000))).toBe(false);
    expect(re('(.*a){20}')('a'.repeat(19))).toBe(false);
  });

  it('names the literal every match holds, so an adapter may skip a line without it', () => {
    const literal = (pattern: string, regex = true, ignoreCase = false) =>
      lineFilter(pattern, { regex, ignoreCase }).literal;
    expect(literal('status=5', false)).toBe('status=5');
    expect(literal('status=5\\d\\d took=\\d+ms$')).toBe('status=5');
    expect(literal('^GET /api/[a-z]+ 5\\d\\d$')).toBe('GET /api/');
    expect(literal('\\[warn\\] disk')).toBe('[warn] disk');
    expect(literal('x(?:timeout after)+y')).toBe('timeout after');
    expect(literal('(foo|bar)baz')).toBe('baz');
    expect(literal('colou?r')).toBe('colo');
    // Nothing is required: an alternative, an optional part, a class; or any case.
    expect(literal('foo|bar')).toBeUndefined();
    expect(literal('(?:abc)?\\d+')).toBeUndefined();
    expect(literal('error', false, true)).toBeUndefined();
    expect(literal('err(or)?', true, true)).toBeUndefined();
    // Each literal is a necessary condition: every line the pattern keeps contains it.
    const lines = ['status=500 took=3ms', 'status=200 took=3ms', 'GET /api/x 503', 'colr colour'];
    for (const pattern of ['status=5\\d\\d took=\\d+ms$', '^GET /api/[a-z]+ 5\\d\\d$', 'colou?r'])
      for (const line of lines) {
        const f = lineFilter(pattern, { regex: true });
        if (f.test(line)) expect(line).toContain(f.literal);
      }
  });

  it('refuses what it cannot run in linear time, naming it', () => {
    expect(refusal('(a)\\1')).toContain('backreferences are not supported');
    expect(refusal('a(?=b)')).toContain('lookaround');
    expect(refusal('a(?<n>b)')).toContain('named groups');
    expect(refusal('\\bword')).toContain('word boundaries');
    expect(refusal('(ab')).toContain('without its ")"');
    expect(refusal('ab)')).toContain('unmatched ")"');
    expect(refusal('[ab')).toContain('without its "]"');
    expect(refusal('*a')).toContain('nothing to repeat');
    expect(refusal('a{5,2}')).toContain('counts down');
    expect(refusal('a{5000}')).toContain('a repeat count over 1000');
    expect(refusal('(a{1000}){1000}')).toContain('too large');
    expect(() => lineMatcher('a'.repeat(maxPatternLength + 1), {})).toThrow(
      `at most ${maxPatternLength} characters`,
    );
  });
});
