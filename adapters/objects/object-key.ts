import { InvalidInput } from '../../core/errors.ts';

// S3's limits, applied to every store so a key accepted in tests is accepted in the cloud,
// and short enough that each segment fits in one file name on the local filesystem.
const maxKeyBytes = 1024;
const maxSegmentBytes = 255;

// Control characters (NUL included) break file names and log lines; backslashes are a
// path separator on some tools, so a key holding one could name another file.
function forbiddenCharacter(value: string): string | null {
  for (const ch of value) {
    const code = ch.charCodeAt(0);
    if (code < 0x20 || code === 0x7f || ch === '\\') return ch;
  }
  return null;
}

function invalid(what: 'key' | 'prefix', value: string, reason: string): InvalidInput {
  return new InvalidInput(`object ${what} ${JSON.stringify(value)} is invalid: ${reason}`, {
    field: what,
  });
}

function checkCharacters(what: 'key' | 'prefix', value: string): void {
  const bad = forbiddenCharacter(value);
  if (bad !== null) {
    const reason =
      bad === '\\'
        ? 'backslashes are not allowed'
        : 'control characters (such as NUL) are not allowed';
    throw invalid(what, value, reason);
  }
  if (value.startsWith('/')) throw invalid(what, value, 'it must be relative (no leading "/")');
  if (Buffer.byteLength(value, 'utf8') > maxKeyBytes)
    throw invalid(what, value, `it is longer than ${maxKeyBytes} bytes`);
}

function checkSegment(what: 'key' | 'prefix', value: string, segment: string): void {
  if (segment === '')
    throw invalid(what, value, 'empty path segments ("//" or a trailing "/") are not allowed');
  if (segment === '.' || segment === '..')
    throw invalid(what, value, `the path segment "${segment}" is not allowed`);
  if (Buffer.byteLength(segment, 'utf8') > maxSegmentBytes) {
    throw invalid(what, value, `a path segment is longer than ${maxSegmentBytes} bytes`);
  }
}

/**
 * Throws InvalidInput unless key is a relative `a/b/c` path: non-empty segments, no `.` or
 * `..`, no backslash or control character, at most 1024 bytes.
 */
export function assertObjectKey(key: string): void {
  if (typeof key !== 'string' || key === '')
    throw new InvalidInput('object key must be a non-empty string', { field: 'key' });
  checkCharacters('key', key);
  for (const segment of key.split('/')) checkSegment('key', key, segment);
}

/**
 * Throws InvalidInput unless prefix could start a valid key: `''`, `a/`, `a/b` and `a/b-` are
 * fine; the complete segments follow the key rules, the last (partial) one may be empty.
 */
export function assertObjectPrefix(prefix: string): void {
  if (typeof prefix !== 'string')
    throw new InvalidInput('object prefix must be a string', { field: 'prefix' });
  if (prefix === '') return;
  checkCharacters('prefix', prefix);
  const segments = prefix.split('/');
  segments.pop();
  for (const segment of segments) checkSegment('prefix', prefix, segment);
}

/** Orders keys by their UTF-8 bytes, as S3 lists them, so every store sorts alike. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The bytes of a body: strings are stored as UTF-8. Always a fresh copy. */
export function bodyBytes(body: Uint8Array | string): Uint8Array {
  if (typeof body === 'string') return new Uint8Array(Buffer.from(body, 'utf8'));
  return Uint8Array.from(body);
}
