import { InvalidInput } from '../errors.ts';
import type { LogLineFilter } from '../ports.ts';

/**
 * Log search: a plain substring by default, or a regular expression run by a Thompson NFA
 * (no backtracking), so its time is linear in the line's length times the pattern's size
 * whatever the pattern: `(a+)+$` over a long line of `a`s costs what `a+$` costs. JavaScript's
 * own RegExp backtracks and cannot be interrupted, so a tenant's pattern never reaches it.
 *
 * Supported: literals, `.`, classes `[a-z0-9_]` and `[^…]`, `\d \w \s \D \W \S`, escaped
 * punctuation, `\t \n \r`, groups `(…)` and `(?:…)`, `|`, `* + ?` (and their lazy forms,
 * which match the same lines), `{n}`, `{n,}`, `{n,m}`, anchors `^ $`. Refused with a 400
 * naming the construct: backreferences, lookaround, named groups, `\b`, patterns over
 * `maxPatternLength` characters or compiling to more than `maxProgramSize` states.
 */
export const maxPatternLength = 256;
export const maxProgramSize = 2_000;

export type LineMatcher = (line: string) => boolean;

/** The matcher for a search: `regex` selects the NFA, otherwise a substring test. */
export function lineMatcher(pattern: string, options: { regex?: boolean; ignoreCase?: boolean }) {
  if (pattern.length > maxPatternLength)
    throw new InvalidInput(`grep: at most ${maxPatternLength} characters`);
  const ignoreCase = options.ignoreCase ?? false;
  if (!options.regex) {
    if (!ignoreCase) return (line: string) => line.includes(pattern);
    const needle = pattern.toLowerCase();
    return (line: string) => line.toLowerCase().includes(needle);
  }
  const program = compile(parse(pattern, ignoreCase));
  return (line: string) => run(program, ignoreCase ? line.toLowerCase() : line);
}

/**
 * The search as the runtime applies it: the matcher, and the text every match contains
 * (the pattern itself, or a regular expression's longest run of literal characters that
 * every match must hold), which lets the engine adapter skip a line while it is still bytes.
 * A case-insensitive search names none (its bytes may differ in case).
 * @example lineFilter('status=5\\d\\d', { regex: true }).literal // 'status=5'
 */
export function lineFilter(
  pattern: string,
  options: { regex?: boolean; ignoreCase?: boolean },
): LogLineFilter {
  const test = lineMatcher(pattern, options);
  if (options.ignoreCase) return { test };
  const literal = options.regex ? requiredLiteral(parse(pattern, false)) : pattern;
  return literal ? { literal, test } : { test };
}

function parse(pattern: string, ignoreCase: boolean): Node {
  return new Parser(pattern, ignoreCase).parse();
}

/**
 * The longest run of literal characters that every match holds: runs are taken only from
 * the top-level sequence (and, recursively, from a group or a repeat that must occur), so
 * an alternative, an optional part or a class never contributes.
 */
function requiredLiteral(node: Node): string {
  if (node.t === 'pred') return node.lit === undefined ? '' : String.fromCodePoint(node.lit);
  if (node.t === 'rep') return node.min > 0 ? requiredLiteral(node.node) : '';
  if (node.t !== 'cat') return '';
  let best = '';
  let run = '';
  for (const item of node.items) {
    if (item.t === 'pred' && item.lit !== undefined) {
      run += String.fromCodePoint(item.lit);
      if (run.length > best.length) best = run;
      continue;
    }
    run = '';
    const inner = requiredLiteral(item);
    if (inner.length > best.length) best = inner;
  }
  return best;
}

// ---------------------------------------------------------------------------- the program

type Pred = (c: number) => boolean;
type Inst =
  | { op: 'char'; pred: Pred }
  | { op: 'split'; x: number; y: number }
  | { op: 'jmp'; x: number }
  | { op: 'bol' }
  | { op: 'eol' }
  | { op: 'match' };

/** A parsed fragment, emitted as instructions later (so `{n,m}` can copy it). */
type Node =
  /** `lit`: the one character this matches, when it is a plain literal (case-sensitive). */
  | { t: 'pred'; pred: Pred; lit?: number }
  | { t: 'bol' }
  | { t: 'eol' }
  | { t: 'cat'; items: Node[] }
  | { t: 'alt'; items: Node[] }
  | { t: 'rep'; node: Node; min: number; max: number | null };

const maxRepeat = 1_000;

class Parser {
  private i = 0;
  private readonly src: string;
  private readonly ignoreCase: boolean;
  constructor(src: string, ignoreCase: boolean) {
    this.src = src;
    this.ignoreCase = ignoreCase;
  }

  parse(): Node {
    const node = this.alt();
    if (this.i < this.src.length) this.fail(`unmatched ")" at ${this.i}`);
    return node;
  }

  private fail(why: string): never {
    throw new InvalidInput(`grep: not a supported regular expression: ${why}`);
  }

  private peek(): string | undefined {
    return this.src[this.i];
  }

  private alt(): Node {
    const items = [this.cat()];
    while (this.peek() === '|') {
      this.i++;
      items.push(this.cat());
    }
    return items.length === 1 ? items[0]! : { t: 'alt', items };
  }

  private cat(): Node {
    const items: Node[] = [];
    while (this.i < this.src.length && this.peek() !== '|' && this.peek() !== ')')
      items.push(this.repeat());
    return { t: 'cat', items };
  }

  private repeat(): Node {
    let node = this.atom();
    for (;;) {
      const c = this.peek();
      let min: number;
      let max: number | null;
      if (c === '*') [min, max] = [0, null];
      else if (c === '+') [min, max] = [1, null];
      else if (c === '?') [min, max] = [0, 1];
      else if (c === '{' && /^\{\d+(,\d*)?\}/.test(this.src.slice(this.i))) {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i))!;
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? null : Number(m[3]);
        if (min > maxRepeat || (max !== null && max > maxRepeat))
          this.fail(`a repeat count over ${maxRepeat}`);
        if (max !== null && max < min) this.fail(`{${min},${max}} counts down`);
        this.i += m[0].length - 1;
      } else return node;
      this.i++;
      if (node.t === 'bol' || node.t === 'eol') this.fail('a repeated anchor');
      if (this.peek() === '?') this.i++; // lazy: the same lines match
      node = { t: 'rep', node, min, max };
    }
  }

  private atom(): Node {
    const c = this.src[this.i++]!;
    switch (c) {
      case '(': {
        if (this.peek() === '?') {
          if (this.src[this.i + 1] !== ':')
            this.fail('lookaround and named groups ("(?=", "(?!", "(?<") are not supported');
          this.i += 2;
        }
        const inner = this.alt();
        if (this.src[this.i++] !== ')') this.fail('a "(" without its ")"');
        return inner;
      }
      case '[':
        return { t: 'pred', pred: this.charClass() };
      case '.':
        return { t: 'pred', pred: (ch) => ch !== 10 };
      case '^':
        return { t: 'bol' };
      case '$':
        return { t: 'eol' };
      case '\\': {
        const next = this.src[this.i];
        const pred = this.escape(false);
        const lit =
          next === 't'
            ? 9
            : next === 'n'
              ? 10
              : next === 'r'
                ? 13
                : next !== undefined && !/[A-Za-z0-9]/.test(next)
                  ? next.codePointAt(0)
                  : undefined;
        return { t: 'pred', pred, lit: this.ignoreCase ? undefined : lit };
      }
      case '*':
      case '+':
      case '?':
        return this.fail(`"${c}" with nothing to repeat at ${this.i - 1}`);
      default:
        return {
          t: 'pred',
          pred: this.literal(c.codePointAt(0)!),
          lit: this.ignoreCase ? undefined : c.codePointAt(0)!,
        };
    }
  }

  private literal(code: number): Pred {
    if (!this.ignoreCase) return (ch) => ch === code;
    // The line is lower-cased before matching; so is every literal.
    const lower = String.fromCodePoint(code).toLowerCase().codePointAt(0)!;
    return (ch) => ch === lower;
  }

  /** After a backslash; `inClass` allows only what stands for characters. */
  private escape(inClass: boolean): Pred {
    const c = this.src[this.i++];
    if (c === undefined) this.fail('a trailing "\\"');
    const classes: Record<string, Pred> = {
      d: isDigit,
      D: (ch) => !isDigit(ch),
      w: isWord,
      W: (ch) => !isWord(ch),
      s: isSpace,
      S: (ch) => !isSpace(ch),
    };
    if (classes[c]) return classes[c];
    if (c === 't') return this.literal(9);
    if (c === 'n') return this.literal(10);
    if (c === 'r') return this.literal(13);
    if (/[1-9]/.test(c)) this.fail('backreferences are not supported');
    if (!inClass && (c === 'b' || c === 'B'))
      this.fail('word boundaries ("\\b") are not supported');
    if (/[A-Za-z0-9]/.test(c)) this.fail(`unknown escape "\\${c}"`);
    return this.literal(c.codePointAt(0)!);
  }

  private charClass(): Pred {
    const negate = this.peek() === '^';
    if (negate) this.i++;
    const parts: Pred[] = [];
    let first = true;
    for (;;) {
      const c = this.src[this.i++];
      if (c === undefined) this.fail('a "[" without its "]"');
      if (c === ']' && !first) break;
      first = false;
      let lo: number;
      if (c === '\\') {
        const save = this.i;
        const esc = this.src[this.i];
        if (esc && 'dDwWsS'.includes(esc)) {
          parts.push(this.escape(true));
          continue;
        }
        this.i = save;
        lo = this.escapedCode();
      } else lo = c.codePointAt(0)!;
      if (
        this.peek() === '-' &&
        this.src[this.i + 1] !== ']' &&
        this.src[this.i + 1] !== undefined
      ) {
        this.i++;
        const h = this.src[this.i++]!;
        const hi = h === '\\' ? this.escapedCode() : h.codePointAt(0)!;
        if (hi < lo) this.fail(`the range ${String.fromCodePoint(lo)}-${h} counts down`);
        parts.push(this.range(lo, hi));
      } else parts.push(this.range(lo, lo));
    }
    return negate
      ? (ch) => ch !== 10 && !parts.some((p) => p(ch))
      : (ch) => parts.some((p) => p(ch));
  }

  private escapedCode(): number {
    const c = this.src[this.i++];
    if (c === undefined) this.fail('a trailing "\\"');
    if (c === 't') return 9;
    if (c === 'n') return 10;
    if (c === 'r') return 13;
    if (/[A-Za-z0-9]/.test(c)) this.fail(`unknown escape "\\${c}" in a class`);
    return c.codePointAt(0)!;
  }

  private range(lo: number, hi: number): Pred {
    if (!this.ignoreCase) return (ch) => ch >= lo && ch <= hi;
    // The line is lower-cased: a range matches a lower-case letter whose upper case it holds.
    return (ch) => {
      if (ch >= lo && ch <= hi) return true;
      const upper = String.fromCodePoint(ch).toUpperCase().codePointAt(0)!;
      return upper >= lo && upper <= hi;
    };
  }
}

function isDigit(ch: number): boolean {
  return ch >= 48 && ch <= 57;
}
function isWord(ch: number): boolean {
  return isDigit(ch) || (ch >= 65 && ch <= 90) || (ch >= 97 && ch <= 122) || ch === 95;
}
function isSpace(ch: number): boolean {
  return ch === 32 || (ch >= 9 && ch <= 13) || ch === 0xa0 || ch === 0xfeff;
}

function compile(tree: Node): Inst[] {
  const prog: Inst[] = [];
  const grow = (inst: Inst) => {
    if (prog.length >= maxProgramSize)
      throw new InvalidInput(
        `grep: the regular expression is too large (more than ${maxProgramSize} states once its repeats are counted out)`,
      );
    prog.push(inst);
    return prog.length - 1;
  };
  const emit = (n: Node): void => {
    switch (n.t) {
      case 'pred':
        grow({ op: 'char', pred: n.pred });
        return;
      case 'bol':
        grow({ op: 'bol' });
        return;
      case 'eol':
        grow({ op: 'eol' });
        return;
      case 'cat':
        for (const item of n.items) emit(item);
        return;
      case 'alt': {
        const jumps: number[] = [];
        for (let k = 0; k < n.items.length - 1; k++) {
          const split = grow({ op: 'split', x: 0, y: 0 });
          emit(n.items[k]!);
          jumps.push(grow({ op: 'jmp', x: 0 }));
          (prog[split] as { x: number; y: number }).x = split + 1;
          (prog[split] as { x: number; y: number }).y = prog.length;
        }
        emit(n.items.at(-1)!);
        for (const j of jumps) (prog[j] as { x: number }).x = prog.length;
        return;
      }
      case 'rep': {
        for (let k = 0; k < n.min; k++) emit(n.node);
        if (n.max === null) {
          const split = grow({ op: 'split', x: 0, y: 0 });
          emit(n.node);
          grow({ op: 'jmp', x: split });
          (prog[split] as { x: number; y: number }).x = split + 1;
          (prog[split] as { x: number; y: number }).y = prog.length;
        } else {
          const splits: number[] = [];
          for (let k = n.min; k < n.max; k++) {
            splits.push(grow({ op: 'split', x: 0, y: 0 }));
            emit(n.node);
          }
          for (const s of splits) {
            (prog[s] as { x: number; y: number }).x = s + 1;
            (prog[s] as { x: number; y: number }).y = prog.length;
          }
        }
        return;
      }
    }
  };
  emit(tree);
  grow({ op: 'match' });
  return prog;
}

/**
 * Whether the program matches anywhere in `line`: every thread advances one character at a
 * time in lock step (Pike's VM without captures), each state at most once per position, so
 * the work is at most the line's length times the program's size.
 */
function run(prog: Inst[], line: string): boolean {
  const n = prog.length;
  let current = new Int32Array(n);
  let next = new Int32Array(n);
  let currentSize = 0;
  const mark = new Int32Array(n).fill(-1);
  const stack = new Int32Array(n * 2 + 2);
  let generation = 0;
  let matched = false;

  // Follows the epsilon moves from pc at position `at`, adding the char states to `list`.
  const add = (list: Int32Array, size: number, pc0: number, at: number): number => {
    let sp = 0;
    stack[sp++] = pc0;
    while (sp > 0) {
      const pc = stack[--sp]!;
      if (mark[pc] === generation) continue;
      mark[pc] = generation;
      const inst = prog[pc]!;
      switch (inst.op) {
        case 'jmp':
          stack[sp++] = inst.x;
          break;
        case 'split':
          stack[sp++] = inst.y;
          stack[sp++] = inst.x;
          break;
        case 'bol':
          if (at === 0) stack[sp++] = pc + 1;
          break;
        case 'eol':
          if (at === line.length) stack[sp++] = pc + 1;
          break;
        case 'match':
          matched = true;
          break;
        case 'char':
          list[size++] = pc;
          break;
      }
    }
    return size;
  };

  let at = 0;
  for (;;) {
    // A thread may start at every position: the search is not anchored.
    currentSize = add(current, currentSize, 0, at);
    if (matched) return true;
    if (at >= line.length) return false;
    const code = line.charCodeAt(at);
    generation++;
    let nextSize = 0;
    for (let k = 0; k < currentSize; k++) {
      const inst = prog[current[k]!] as { op: 'char'; pred: Pred };
      if (inst.pred(code)) nextSize = add(next, nextSize, current[k]! + 1, at + 1);
      if (matched) return true;
    }
    [current, next] = [next, current];
    currentSize = nextSize;
    at++;
  }
}
