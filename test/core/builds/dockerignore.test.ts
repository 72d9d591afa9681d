import { describe, expect, it } from 'vitest';
import { contextFilter, parseDockerIgnore } from '../../../core/builds/dockerignore.ts';

describe('.dockerignore as the docker CLI reads it', () => {
  const ignore = parseDockerIgnore(
    [
      '# comment',
      '',
      'node_modules',
      '/secret.txt',
      './logs/*.log',
      '**/*.tmp',
      'docs',
      '!docs/keep.md',
      'a?c',
      'ch[0-9]',
    ].join('\n'),
  );
  it.each([
    ['node_modules', true],
    ['node_modules/x/index.js', true],
    ['src/node_modules/x.js', false],
    ['secret.txt', true],
    ['sub/secret.txt', false],
    ['logs/a.log', true],
    ['logs/deep/a.log', false],
    ['x.tmp', true],
    ['deep/er/x.tmp', true],
    ['docs/readme.md', true],
    ['docs/keep.md', false],
    ['abc', true],
    ['abbc', false],
    ['ch7', true],
    ['chx', false],
    ['src/index.js', false],
    ['# comment', false],
  ])('%s → excluded %s', (path, excluded) => {
    expect(ignore.excludes(path)).toBe(excluded);
  });

  it('excludes nothing without a file, and the last matching pattern decides', () => {
    expect(parseDockerIgnore(null).excludes('anything')).toBe(false);
    const all = parseDockerIgnore('*\n!src\nsrc/private\n');
    expect(all.excludes('README.md')).toBe(true);
    expect(all.excludes('src/index.js')).toBe(false);
    expect(all.excludes('src/private/key')).toBe(true);
    expect(all.hasExceptions).toBe(true);
  });

  it('always sends the Dockerfile and .dockerignore, as the CLI does', () => {
    const filter = contextFilter(parseDockerIgnore('*\n'), ['Dockerfile', '.dockerignore']);
    expect(filter('Dockerfile')).toBe(false);
    expect(filter('.dockerignore')).toBe(false);
    expect(filter('index.js')).toBe(true);
  });
});
