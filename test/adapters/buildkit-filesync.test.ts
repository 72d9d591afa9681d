/**
 * The file sync sender without an engine: the packet codec, the walk's order and filters as
 * BuildKit's receiver needs them, and a receiver that misbehaves.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodePacket,
  encodePacket,
  GoMode,
  PacketType,
  sendDiffCopy,
  walkContext,
  type Packet,
  type SyncFilter,
} from '../../adapters/runtime/buildkit-filesync.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'sdo-fsync-unit-'));
  await mkdir(path.join(root, 'a/deep'), { recursive: true });
  await mkdir(path.join(root, 'logs'));
  await mkdir(path.join(root, 'empty'));
  await writeFile(path.join(root, 'a/deep/x.txt'), 'x');
  await writeFile(path.join(root, 'a-b'), 'dash sorts after the directory a');
  await writeFile(path.join(root, 'real.Dockerfile'), 'FROM x\n');
  await symlink('real.Dockerfile', path.join(root, 'Dockerfile'));
  await writeFile(path.join(root, 'logs/keep.txt'), 'kept');
  await writeFile(path.join(root, 'logs/drop.txt'), 'dropped');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const none: SyncFilter = { includePatterns: [], excludePatterns: [], followPaths: [] };
const paths = async (filter: Partial<SyncFilter>) =>
  (await walkContext(root, { ...none, ...filter })).map((e) => e.stat.path);

describe('file sync packets', () => {
  it('round-trips a STAT with a nanosecond mtime past 2^53, and the empty STAT that ends a walk', () => {
    const stat = {
      path: 'src/app.js',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: 12n,
      modTime: 1_796_400_947_707_934_410n,
      linkname: '',
    };
    expect(decodePacket(encodePacket({ type: PacketType.STAT, stat }))).toEqual({
      type: PacketType.STAT,
      stat,
    });
    expect(encodePacket({ type: PacketType.STAT })).toHaveLength(0);
    const data = Buffer.from('chunk');
    expect(decodePacket(encodePacket({ type: PacketType.DATA, id: 7, data }))).toEqual({
      type: PacketType.DATA,
      id: 7,
      data,
    });
  });
});

describe('the walk', () => {
  it('visits a directory before its entries, names in byte order, as filepath.Walk does', async () => {
    expect(await paths({})).toEqual([
      'Dockerfile',
      'a',
      'a/deep',
      'a/deep/x.txt',
      'a-b',
      'empty',
      'logs',
      'logs/drop.txt',
      'logs/keep.txt',
      'real.Dockerfile',
    ]);
    const entries = await walkContext(root, none);
    const link = entries.find((e) => e.stat.path === 'Dockerfile')!;
    expect(link.stat.linkname).toBe('real.Dockerfile');
    expect(link.stat.mode & GoMode.symlink).toBeTruthy();
    expect(link.abs).toBeNull();
    expect(entries.find((e) => e.stat.path === 'empty')!.stat.mode & GoMode.dir).toBeTruthy();
  });

  it('keeps what include patterns name, with the directories on the way', async () => {
    expect(await paths({ includePatterns: ['a/deep/*.txt'] })).toEqual([
      'a',
      'a/deep',
      'a/deep/x.txt',
    ]);
    expect(await paths({ includePatterns: ['a'] })).toEqual(['a', 'a/deep', 'a/deep/x.txt']);
  });

  it('follows a followpath symlink to its target', async () => {
    expect(await paths({ followPaths: ['Dockerfile', 'Dockerfile.dockerignore'] })).toEqual([
      'Dockerfile',
      'real.Dockerfile',
    ]);
  });

  it('leaves out excluded paths, entering an excluded directory only for a ! exception', async () => {
    expect(await paths({ excludePatterns: ['logs', 'a'] })).toEqual([
      'Dockerfile',
      'a-b',
      'empty',
      'real.Dockerfile',
    ]);
    expect(await paths({ excludePatterns: ['logs', '!logs/keep.txt'] })).toContain('logs/keep.txt');
    expect(await paths({ excludePatterns: ['logs', '!logs/keep.txt'] })).not.toContain(
      'logs/drop.txt',
    );
  });
});

describe('the sender', () => {
  /** A receiver scripted packet by packet; what the sender sent is kept. */
  const scripted = (script: Packet[]) => {
    const sent: Packet[] = [];
    return {
      sent,
      stream: {
        incoming: (async function* () {
          // Lets the walk's STATs go out first, as a real receiver's answers would.
          await new Promise((r) => setTimeout(r, 20));
          yield* script;
        })(),
        send: async (p: Packet) => void sent.push(p),
      },
    };
  };

  it('answers a REQ with the file in DATA chunks and an empty DATA, then FIN', async () => {
    const order = await paths({});
    const id = order.indexOf('a/deep/x.txt');
    const { stream, sent } = scripted([{ type: PacketType.REQ, id }, { type: PacketType.FIN }]);
    const report = await sendDiffCopy(stream, root, 'context', none);
    expect(report).toMatchObject({ requested: ['a/deep/x.txt'], bytes: 1, entries: order.length });
    const data = sent.filter((p) => p.type === PacketType.DATA);
    expect(data.map((p) => [p.id, p.data?.toString() ?? ''])).toEqual([
      [id, 'x'],
      [id, ''],
    ]);
    expect(sent.at(-1)).toEqual({ type: PacketType.FIN });
  });

  it('fails on a request for an id that is no regular file, and on the receiver’s error', async () => {
    const dirId = (await paths({})).indexOf('a');
    await expect(
      sendDiffCopy(scripted([{ type: PacketType.REQ, id: dirId }]).stream, root, 'context', none),
    ).rejects.toThrow(`unknown file ${dirId}`);
    await expect(
      sendDiffCopy(
        scripted([{ type: PacketType.ERR, data: Buffer.from('disk full') }]).stream,
        root,
        'context',
        none,
      ),
    ).rejects.toThrow(/disk full/);
  });
});

describe('an engine without BuildKit sessions', () => {
  /** A fake Engine API on a unix socket: no `/session`, a legacy build answered from the tar. */
  async function fakeEngine() {
    const { createServer } = await import('node:http');
    const socket = path.join(root, `engine-${Date.now()}.sock`);
    const builds: { query: URLSearchParams; body: Buffer }[] = [];
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://engine');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (url.pathname.endsWith('/session')) {
          res.writeHead(404, { 'content-type': 'application/json' });
          return res.end('{"message":"page not found"}');
        }
        if (url.pathname.endsWith('/build')) {
          builds.push({ query: url.searchParams, body: Buffer.concat(chunks) });
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"stream":"Step 1/1 : FROM scratch\\n"}\n');
          return res.end('{"aux":{"ID":"sha256:feed"}}\n');
        }
        res.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    return { socket, builds, close: () => new Promise((r) => server.close(r)) };
  }

  const spec = (secrets?: Record<string, string>) => ({
    tag: 'fake:1',
    context: (async function* () {
      yield Buffer.from('the tar');
    })(),
    files: {
      open: async () => {
        throw new Error('no checkout is made for an engine that cannot take files');
      },
      key: 'k',
    },
    dockerfile: 'Dockerfile',
    buildArgs: {},
    labels: {},
    memoryMb: null,
    cpus: null,
    timeoutMs: 10_000,
    ...(secrets ? { secrets } : {}),
  });

  it('uploads the tar to the legacy builder, and refuses when build secrets need the session', async () => {
    const { DockerRuntime } = await import('../../adapters/runtime/docker.ts');
    const engine = await fakeEngine();
    try {
      const runtime = new DockerRuntime();
      const target = { dockerHost: `unix://${engine.socket}` };
      // spec()'s `open` throws: no checkout is made for this engine.
      const result = await runtime.build(target, spec(), () => undefined);
      expect(result).toMatchObject({ imageId: 'sha256:feed', error: null });
      expect(result.transfer).toBeUndefined();
      expect(engine.builds).toHaveLength(1);
      expect(engine.builds[0]!.query.get('version')).toBe('1');
      expect(engine.builds[0]!.query.get('remote')).toBeNull();
      expect(engine.builds[0]!.body.toString()).toBe('the tar');
      await expect(runtime.build(target, spec({ TOKEN: 'x' }), () => undefined)).rejects.toThrow(
        /no BuildKit session \(POST \/session answered 404\), and build secrets need one/,
      );
    } finally {
      await engine.close();
    }
  });
});
