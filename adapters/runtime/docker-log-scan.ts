/**
 * The log scanner: a search of a container's stored log beside its files, on the container's
 * own engine, instead of through the Engine API's log read (which decodes every record and
 * writes one HTTP frame per line: 30–50 s for a million lines on the test machine, whatever
 * the search keeps).
 *
 * `DockerRuntime.logs` runs it as a one-off (`node -e`) with the container's `local-logs`
 * directory bind-mounted read-only at `/logs`, no network, bounded memory and CPU, removed
 * afterwards. It walks the `local` driver's records (uint32 BE length, a protobuf
 * `LogEntry`, the length again), keeps those in the time range whose line holds the search's
 * literal (found with one native `Buffer.indexOf` per chunk of file and per hit, so a record
 * without it is stepped over by its length), and writes only those to stdout in the Engine
 * API's own multiplexed form (`[stream,0,0,0,uint32 BE length]<RFC 3339 time> <line>\n`), so
 * `dockerLogLines` reads the scanner's answer exactly as it reads the engine's.
 *
 * The script is a string, not a function's source: a bundler's helpers (esbuild's
 * `keepNames`) would otherwise end up in a program that runs where they do not exist.
 */

/** How the scanner is told what to find: its environment. */
export interface LogScanQuery {
  /** The bytes every kept line holds (the filter's literal), never empty. */
  literal: Buffer;
  /** Nanoseconds since the epoch, inclusive (the Engine's `since`). */
  sinceNanos: bigint;
  /** Nanoseconds since the epoch, inclusive (the Engine's `until`); none: to the end. */
  untilNanos?: bigint;
  /** A line is answered with at most this many bytes (the reader cuts one byte less). */
  maxLineBytes: number;
}

export function logScanEnv(q: LogScanQuery): Record<string, string> {
  return {
    SCAN_LITERAL: q.literal.toString('base64'),
    SCAN_SINCE: String(q.sinceNanos),
    SCAN_UNTIL: q.untilNanos === undefined ? '' : String(q.untilNanos),
    SCAN_MAX_LINE: String(q.maxLineBytes),
  };
}

/** An ISO time with up to 9 fraction digits → nanoseconds since the epoch. */
export function isoToNanos(iso: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(iso);
  const seconds = Math.floor(Date.parse(m ? `${m[1]}${m[3]}` : iso) / 1000);
  if (!Number.isFinite(seconds)) throw new Error(`not a time: ${iso}`);
  return BigInt(seconds) * 1_000_000_000n + BigInt((m?.[2] ?? '').padEnd(9, '0') || '0');
}

/**
 * Exit codes the adapter reads: 0 the whole log was scanned; 3 no log file in the
 * directory (not a `local` log, or the data-root was not the engine's); 4 a record that
 * does not parse (the format changed): both mean "read it through the engine instead".
 */
export const logScanExit = { noFiles: 3, badRecord: 4 } as const;

/**
 * The scanner's last frame once it has scanned every file: stream 3, which the log reader
 * steps over. Seeing it, the reader is done at once; the one-off's exit and removal (a
 * second under load) go on behind it.
 */
export const logScanDone = Buffer.from([3, 0, 0, 0, 0, 0, 0, 4, 0x64, 0x6f, 0x6e, 0x65]);

/** The program (CommonJS, Node ≥ 18), run as `node -e <script>` with `logScanEnv`. */
export const logScanScript = String.raw`'use strict';
const fs = require('fs');
const dir = process.env.SCAN_DIR || '/logs';
const needle = Buffer.from(process.env.SCAN_LITERAL || '', 'base64');
const since = BigInt(process.env.SCAN_SINCE || '0');
const until = process.env.SCAN_UNTIL ? BigInt(process.env.SCAN_UNTIL) : null;
const maxLine = Number(process.env.SCAN_MAX_LINE || 8193);
// Of a long line's parts, the bytes that can decide it: the reader keeps maxLine - 1.
const keep = maxLine + needle.length;
// The Engine cuts a line into parts of this size (partial records).
const partBytes = 16 * 1024;
const maxRecord = 1024 * 1024;
const rank = (n) => { const m = /\.(\d+)$/.exec(n); return m ? Number(m[1]) : 0; };
// Oldest first: container.log.N ... container.log.1, then container.log. All opened before
// any is read, so a rotation during the scan neither skips nor repeats a file.
const names = fs.readdirSync(dir).filter((n) => /^container\.log(\.\d+)?$/.test(n)).sort((a, b) => rank(b) - rank(a));
if (!names.includes('container.log')) process.exit(${logScanExit.noFiles});
const fds = names.map((n) => fs.openSync(dir + '/' + n, 'r'));

// Frames are written into one buffer, flushed when full: no object per answered line.
let out = Buffer.allocUnsafe(1024 * 1024);
let outAt = 0;
const pause = new Int32Array(new SharedArrayBuffer(4));
const writeAll = (b) => {
  let off = 0;
  while (off < b.length) {
    try { off += fs.writeSync(1, b, off); }
    catch (e) { if (e.code !== 'EAGAIN') throw e; Atomics.wait(pause, 0, 0, 2); }
  }
};
const flush = () => { if (outAt) { writeAll(out.subarray(0, outAt)); outAt = 0; } };
const emit = (stream, ns, line) => {
  const body = line.length > maxLine ? line.subarray(0, maxLine) : line;
  const secs = ns / 1000000000n;
  const time = new Date(Number(secs) * 1000).toISOString().slice(0, 19) + '.' + String(ns - secs * 1000000000n).padStart(9, '0') + 'Z ';
  const size = 8 + time.length + body.length + 1;
  if (outAt + size > out.length) flush();
  out[outAt] = stream; out[outAt + 1] = 0; out[outAt + 2] = 0; out[outAt + 3] = 0;
  out.writeUInt32BE(size - 8, outAt + 4);
  outAt += 8;
  outAt += out.write(time, outAt, 'latin1');
  // Copied now: the line is a view of the read buffer, which the next read overwrites.
  outAt += body.copy(out, outAt);
  out[outAt++] = 0x0a;
};
const inRange = (ns) => ns >= since && (until === null || ns <= until);
const timeAt = (buf, p) => {
  let v = 0n, shift = 0n, b;
  do { b = buf[p++]; v |= BigInt(b & 0x7f) << shift; shift += 7n; } while (b & 0x80);
  return v;
};
// A long line being joined, per stream (1 stdout, 2 stderr): its first part's time, its first bytes.
const groups = { 1: null, 2: null };

let buf = Buffer.alloc(4 * 1024 * 1024);
for (const fd of fds) {
  let have = 0;
  let eof = false;
  while (!eof) {
    if (have === buf.length) { const bigger = Buffer.alloc(buf.length * 2); buf.copy(bigger, 0, 0, have); buf = bigger; }
    const n = fs.readSync(fd, buf, have, buf.length - have, null);
    if (n === 0) eof = true;
    have += n;
    const view = buf.subarray(0, have);
    let hit = -1;
    let pos = 0;
    while (pos + 4 <= have) {
      const len = view.readUInt32BE(pos);
      if (len > maxRecord) process.exit(${logScanExit.badRecord});
      const end = pos + 4 + len;
      if (end + 4 > have) break;
      // Nearly every record: a short one without the literal, no long line being joined. It
      // is stepped over by its length, unparsed; the rest (hits, long lines) is parsed.
      if (len < partBytes && groups[1] === null && groups[2] === null) {
        if (hit < pos + 4) { hit = view.indexOf(needle, pos + 4); if (hit === -1) hit = have; }
        if (hit + needle.length > end) { pos = end + 4; continue; }
      }
      let p = pos + 4;
      pos = end + 4;
      let stream = 1, tAt = -1, ls = p, le = p, partial = false, last = false;
      while (p < end) {
        const tag = view[p++];
        const wire = tag & 7, field = tag >> 3;
        if (wire === 0) {
          if (field === 2) tAt = p;
          while (view[p] & 0x80) p++;
          if (field === 4) partial = view[p] !== 0;
          p++;
        } else if (wire === 2) {
          let l = 0, mul = 1, b;
          do { b = view[p++]; l += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80);
          if (field === 1) stream = l === 6 && view[p + 3] === 0x65 ? 2 : 1; // "stderr" : "stdout"
          else if (field === 3) { ls = p; le = p + l; }
          else if (field === 5) { for (let q = p; q < p + l; ) { const t = view[q++]; if (t === 0x08) { last = view[q] !== 0; } if ((t & 7) === 0) { while (view[q] & 0x80) q++; q++; } else if ((t & 7) === 2) { q += view[q] + 1; } else break; } }
          p += l;
        } else if (wire === 1) p += 8;
        else if (wire === 5) p += 4;
        else process.exit(${logScanExit.badRecord});
      }
      if (tAt === -1 || p !== end) process.exit(${logScanExit.badRecord});
      const g = groups[stream];
      if (partial && !last && le - ls >= partBytes) {
        // A part of a long line with more to come: judged once it is whole.
        if (!g) groups[stream] = { ns: timeAt(view, tAt), parts: [Buffer.from(view.subarray(ls, Math.min(le, ls + keep)))], bytes: Math.min(le - ls, keep) };
        else if (g.bytes < keep) { const take = Math.min(le - ls, keep - g.bytes); g.parts.push(Buffer.from(view.subarray(ls, ls + take))); g.bytes += take; }
        continue;
      }
      if (g) {
        groups[stream] = null;
        if (g.bytes < keep) g.parts.push(Buffer.from(view.subarray(ls, Math.min(le, ls + keep - g.bytes))));
        const whole = Buffer.concat(g.parts);
        if (whole.indexOf(needle) !== -1 && inRange(g.ns)) emit(stream, g.ns, whole);
        continue;
      }
      // One native search finds the next hit; every record before it is stepped over.
      if (hit < ls) hit = view.indexOf(needle, ls);
      if (hit === -1) { hit = have; }
      if (hit + needle.length > le) continue;
      const ns = timeAt(view, tAt);
      if (inRange(ns)) emit(stream, ns, view.subarray(ls, le));
    }
    if (pos > 0) { buf.copy(buf, 0, pos, have); have -= pos; }
    if (eof && have > 0) break; // a record still being written: the next read sees it
  }
}
for (const s of [1, 2]) {
  const g = groups[s];
  if (g) { const whole = Buffer.concat(g.parts); if (whole.indexOf(needle) !== -1 && inRange(g.ns)) emit(s, g.ns, whole); }
}
flush();
writeAll(Buffer.from([${[...Buffer.from([3, 0, 0, 0, 0, 0, 0, 4, 0x64, 0x6f, 0x6e, 0x65])].join(', ')}]));
`;
