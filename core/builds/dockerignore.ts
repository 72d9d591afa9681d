/**
 * `.dockerignore` as Docker reads it (the CLI's `patternmatcher`), for the build context the
 * worker streams: the engine's API does not apply it to an uploaded tar, the docker CLI
 * does before sending, so the worker must do what the CLI would. Pure.
 *
 * Rules: one pattern a line; `#` starts a comment line; blank lines are skipped; a leading
 * `!` re-includes; a leading `/` and `./` are dropped; `*` matches within one path segment,
 * `?` one character, `**` any number of segments; a pattern that matches a directory
 * excludes all under it; the last matching pattern decides.
 */

interface Pattern {
  negated: boolean;
  re: RegExp;
}

export interface DockerIgnore {
  /** True when `path` (relative to the context, `/`-separated) is left out of the context. */
  excludes(path: string): boolean;
  /** Whether any `!` pattern exists (then excluded directories may still hold kept files). */
  readonly hasExceptions: boolean;
}

function clean(p: string): string {
  const parts: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return parts.join('/');
}

function toRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        // `**/` matches zero or more whole segments; a trailing `**` everything below.
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end === -1) re += '\\[';
      else {
        let cls = pattern.slice(i + 1, end).replace(/\\/g, '\\\\');
        if (cls.startsWith('^') || cls.startsWith('!')) cls = `^${cls.slice(1)}`;
        re += `[${cls}]`;
        i = end;
      }
    } else if (ch === '\\' && i + 1 < pattern.length) {
      i++;
      re += pattern[i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Parses a `.dockerignore` file's text (null: none, nothing excluded). */
export function parseDockerIgnore(text: string | null): DockerIgnore {
  const patterns: Pattern[] = [];
  for (const raw of (text ?? '').split(/\r?\n/)) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let negated = false;
    if (line.startsWith('!')) {
      negated = true;
      line = line.slice(1).trim();
    }
    line = clean(line);
    if (line === '') continue;
    patterns.push({ negated, re: toRegExp(line) });
  }
  return {
    hasExceptions: patterns.some((p) => p.negated),
    excludes(path: string): boolean {
      const p = clean(path);
      if (p === '') return false;
      // A pattern matching a parent directory matches everything under it.
      const parents: string[] = [];
      const parts = p.split('/');
      for (let i = 1; i <= parts.length; i++) parents.push(parts.slice(0, i).join('/'));
      let excluded = false;
      for (const pattern of patterns) {
        if (excluded === !pattern.negated) continue; // cannot change the verdict
        if (parents.some((q) => pattern.re.test(q))) excluded = !pattern.negated;
      }
      return excluded;
    },
  };
}

/**
 * The context's filter: what `.dockerignore` leaves out, except the files the builder must
 * read (the Dockerfile and `.dockerignore` itself are always sent, as the docker CLI does).
 */
export function contextFilter(
  ignore: DockerIgnore,
  alwaysSent: string[],
): (path: string) => boolean {
  const keep = new Set(alwaysSent.map(clean));
  return (path) => !keep.has(clean(path)) && ignore.excludes(path);
}
