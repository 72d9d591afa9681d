/**
 * The app-logs search beside the files (adapters/runtime/docker-log-scan.ts) against a real
 * engine: whatever the query, the scanner answers exactly what the Engine API's read answers
 * through the same filter, across rotated files, both streams, long (partial) lines, a
 * line with quotes and non-ASCII text, and a time range; its one-off is gone afterwards; a
 * scanner that cannot run or finish leaves the engine read to answer, said in the log.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime, type DockerRuntimeOptions } from '../../adapters/runtime/docker.ts';
import { lineFilter } from '../../core/services/log-search.ts';
import type {
  ContainerLogLine,
  ContainerLogOptions,
  ContainerSpec,
  DockerTarget,
  Logger,
  PipedRun,
} from '../../core/ports.ts';
import {
  dockerTarget,
  ensureTestImages,
  removeContainersByLabel,
  testImages,
  testRun,
} from '../support/docker.ts';
import { available } from '../support/services.ts';

const hasDocker = await available('docker');
const sh = promisify(execFile);
/** Any image with `node` on its PATH runs the scanner; the test images' Node one. */
const scanImage = 'selfdevop-test/node:base';

/** A DockerRuntime that counts its scanner runs and keeps what it warned. */
class Counted extends DockerRuntime {
  scans = 0;
  readonly warnings: string[];
  constructor(options: DockerRuntimeOptions = {}) {
    const warnings: string[] = [];
    const logger: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (_o, msg) => void warnings.push(msg ?? ''),
      error: () => undefined,
      child: () => logger,
    };
    super({ logScanImage: scanImage, logScanAfterMs: 0, logger, ...options });
    this.warnings = warnings;
  }
  override async runPiped(
    target: DockerTarget,
    spec: ContainerSpec,
    options: Parameters<DockerRuntime['runPiped']>[2],
  ): Promise<PipedRun> {
    if (spec.labels['selfdevop.log-scan']) this.scans++;
    return super.runPiped(target, spec, options);
  }
}

describe.skipIf(!hasDocker)('the log scanner beside the files', () => {
  const run = testRun(import.meta.url);
  const engine = new DockerRuntime({ logScanImage: '' });
  const name = run.name('scanned');
  let id = '';
  beforeAll(async () => {
    await ensureTestImages();
    // 1 MB files, 3 kept: the filler rotates the first lines into container.log.1/.2.
    await engine.start(dockerTarget, {
      name,
      image: testImages.app,
      env: {},
      labels: run.labels,
      restartPolicy: 'no',
      logRotation: { maxSizeMb: 1, maxFiles: 3 },
      cmd: [
        '/bin/sh',
        '-c',
        [
          'fill() { i=0; while [ $i -lt 10000 ]; do if [ $((i % 500)) -eq 0 ]; then echo "needle filler $1 $i"; else echo "filler $1 $i padding padding padding padding padding padding padding"; fi; i=$((i+1)); done; }',
          'fill a',
          "echo 'plain needle one'",
          "echo 'needle on stderr' >&2",
          `echo 'quotes "needle" and non-ASCII: héllo wörld ✓ needle'`,
          // 40 KB lines: stored as 16 KiB partial records, read as one line cut at 8 KiB.
          "printf 'needle'; head -c 40000 /dev/zero | tr '\\0' y; echo",
          "head -c 40000 /dev/zero | tr '\\0' z; echo ' needle past the cut'",
          "head -c 9000 /dev/zero | tr '\\0' w; echo ' needle past the cut of one record'",
          'sleep 1',
          'fill b',
          "echo 'needle after the pause' >&2",
          "printf 'trailing needle without newline'",
        ].join('\n'),
      ],
    });
    for (let k = 0; ; k++) {
      if ((await engine.inspect(dockerTarget, name))?.state === 'exited') break;
      if (k > 600) throw new Error(`${name} did not exit`);
      await new Promise((r) => setTimeout(r, 100));
    }
    id = (await sh('docker', ['inspect', '--format', '{{.Id}}', name])).stdout.trim();
  }, 120_000);
  afterAll(async () => {
    await removeContainersByLabel(run.labels);
    engine.close();
  });

  const read = async (
    runtime: DockerRuntime,
    options: Partial<ContainerLogOptions> = {},
  ): Promise<ContainerLogLine[]> => {
    const lines: ContainerLogLine[] = [];
    for await (const l of runtime.logs(dockerTarget, name, {
      follow: false,
      signal: new AbortController().signal,
      ...options,
    }))
      lines.push(l);
    return lines;
  };
  const scanners = async () =>
    (await sh('docker', ['ps', '-aq', '--filter', `label=selfdevop.log-scan=${id}`])).stdout.trim();
  /**
   * The scanner's one-off is removed behind the answer (the reader stops at its last frame,
   * not at the container's exit and removal), so it is gone shortly after, not at once:
   * waited for, bounded (30 s: a removal under CI's load takes seconds).
   */
  const scannersGone = async () => {
    let left = await scanners();
    for (let k = 0; left !== '' && k < 300; k++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await scanners();
    }
    return left;
  };

  it('has rotated files to scan', async () => {
    const root = (await sh('docker', ['info', '--format', '{{.DockerRootDir}}'])).stdout.trim();
    const files = (await sh('ls', [`${root}/containers/${id}/local-logs`])).stdout.split('\n');
    expect(files).toContain('container.log');
    expect(files).toContain('container.log.1');
  });

  it('answers what the engine read answers, query by query', async () => {
    const scanned = new Counted();
    const all = await read(engine);
    const pause = all.find((l) => l.text === 'needle after the pause')!;
    const one = all.find((l) => l.text === 'plain needle one')!;
    const queries: { name: string; options: Partial<ContainerLogOptions> }[] = [
      { name: 'literal', options: { filter: lineFilter('needle', {}) } },
      {
        name: 'regex',
        options: { filter: lineFilter('needle (on|after) \\w+$', { regex: true }) },
      },
      {
        name: 'quotes and non-ASCII',
        options: { filter: lineFilter('"needle" and non-ASCII: hé', {}) },
      },
      { name: 'stderr only text', options: { filter: lineFilter('on stderr', {}) } },
      { name: 'long line', options: { filter: lineFilter('needleyyy', {}) } },
      { name: 'past the cut', options: { filter: lineFilter('past the cut', {}) } },
      { name: 'nothing', options: { filter: lineFilter('no such text anywhere', {}) } },
    ];
    for (const q of queries) {
      const want = await read(engine, q.options);
      const got = await read(scanned, q.options);
      expect({ query: q.name, lines: got }).toEqual({ query: q.name, lines: want });
    }
    // A range: the lines in it, both ends included. Not the engine's own `until`, which
    // stops at the first record after it, though stdout and stderr are stored in the order
    // the engine's two copiers wrote them, so a line of the other stream at `until` may
    // follow a later one: its answer drops that line (seen here), the scanner does not.
    const range = { since: one.time, until: pause.time };
    const inRange = (await read(engine, { filter: lineFilter('needle', {}) })).filter(
      (l) => l.time >= range.since && l.time <= range.until,
    );
    expect(await read(scanned, { filter: lineFilter('needle', {}), ...range })).toEqual(inRange);
    expect(scanned.scans).toBe(queries.length + 1);
    expect(scanned.warnings).toEqual([]);
    // What the queries found, so an equality of two empty answers proves nothing.
    const literal = await read(scanned, { filter: lineFilter('needle', {}) });
    expect(literal.filter((l) => l.text.startsWith('needle filler'))).toHaveLength(40);
    expect(literal.find((l) => l.text === 'needle on stderr')?.stream).toBe('stderr');
    expect(literal.map((l) => l.text)).toContain(
      'quotes "needle" and non-ASCII: héllo wörld ✓ needle',
    );
    const long = literal.find((l) => l.text.startsWith('needleyyy'))!;
    expect(Buffer.byteLength(long.text)).toBe(8 * 1024 + 3); // 8 KiB and the cut's "…"
    expect(literal.some((l) => l.text.includes('past the cut'))).toBe(false);
    expect(literal.at(-1)?.text).toBe('trailing needle without newline');
    const ranged = await read(scanned, {
      filter: lineFilter('needle', {}),
      since: one.time,
      until: pause.time,
    });
    expect(ranged[0]?.text).toBe('plain needle one');
    expect(ranged.at(-1)?.text).toBe('needle after the pause');
    expect(await scannersGone()).toBe('');
  }, 120_000);

  it('reads through the engine what a scanner cannot judge: follow, tail, no literal', async () => {
    const scanned = new Counted();
    const ignoreCase = { filter: lineFilter('NEEDLE', { ignoreCase: true }) };
    expect(await read(scanned, ignoreCase)).toEqual(await read(engine, ignoreCase));
    const tail = { filter: lineFilter('needle', {}), tail: 5 };
    expect(await read(scanned, tail)).toEqual(await read(engine, tail));
    // A follow of an exited container ends with its last line (bounded: 60 s).
    const follow = new AbortController();
    const bound = setTimeout(() => follow.abort(), 60_000);
    const followed = await read(scanned, {
      filter: lineFilter('needle', {}),
      follow: true,
      signal: follow.signal,
    });
    clearTimeout(bound);
    expect(followed.at(-1)?.text).toBe('trailing needle without newline');
    expect(scanned.scans).toBe(0);
  }, 60_000);

  it('reads a log the engine answers within the budget without a scanner, and hands a longer one over after its last line', async () => {
    const q = { filter: lineFilter('needle', {}) };
    const want = await read(engine, q);
    const patient = new Counted({ logScanAfterMs: 120_000 });
    expect(await read(patient, q)).toEqual(want);
    expect(patient.scans).toBe(0);
    const hasty = new Counted({ logScanAfterMs: 1 });
    expect(await read(hasty, q)).toEqual(want);
    expect(hasty.scans).toBe(1);
    expect(hasty.warnings).toEqual([]);
  }, 120_000);

  it('falls back to the engine read, loudly, when the scanner image is absent', async () => {
    const absent = new Counted({ logScanImage: testImages.missing });
    const q = { filter: lineFilter('needle', {}) };
    expect(await read(absent, q)).toEqual(await read(engine, q));
    expect(absent.warnings).toHaveLength(1);
    expect(absent.warnings[0]).toMatch(
      /reads through the Engine API instead of its scanner: it could not run/,
    );
  }, 60_000);

  it('falls back to the engine read when the scanner runs out of time, without repeating a line', async () => {
    // A scanner that sleeps before it scans, so its 1 s timeout surely comes first: a bare
    // 1 ms timeout raced the scan itself, which on a fast engine finished before the kill.
    class Slow extends Counted {
      override async runPiped(
        target: DockerTarget,
        spec: ContainerSpec,
        options: Parameters<DockerRuntime['runPiped']>[2],
      ): Promise<PipedRun> {
        const cmd = ['/bin/sh', '-c', 'sleep 30; exec "$@"', 'sh', ...(spec.cmd ?? [])];
        return super.runPiped(target, { ...spec, cmd }, options);
      }
    }
    const slow = new Slow({ logScanTimeoutMs: 1000 });
    const q = { filter: lineFilter('needle', {}) };
    expect(await read(slow, q)).toEqual(await read(engine, q));
    expect(slow.scans).toBe(1);
    expect(slow.warnings.join()).toMatch(/it timed out/);
    expect(await scannersGone()).toBe('');
  }, 60_000);

  it('kills and removes the scanner when its reader leaves after the first line', async () => {
    const scanned = new Counted();
    for await (const l of scanned.logs(dockerTarget, name, {
      follow: false,
      signal: new AbortController().signal,
      filter: lineFilter('needle', {}),
    })) {
      expect(l.text).toBe('needle filler a 0');
      break;
    }
    expect(await scannersGone()).toBe('');
    expect(scanned.warnings).toEqual([]);
  }, 60_000);
});
