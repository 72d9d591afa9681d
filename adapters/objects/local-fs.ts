import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { InvalidInput } from '../../core/errors.ts';
import type { ObjectStore } from '../../core/ports.ts';
import { assertObjectKey, assertObjectPrefix, bodyBytes, compareKeys } from './object-key.ts';

const fileMode = 0o600;
const dirMode = 0o700;

/** A temporary file's prefix for one key: a hash, so no key's characters reach a file name. */
const partialTag = (key: string): string =>
  createHash('sha256').update(key).digest('hex').slice(0, 24);

function errorCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/**
 * Self-hosted object store: each key `a/b/c` is the file `<root>/objects/a/b/c` (0600, in
 * 0700 folders). Writes go to `<root>/tmp` first and are renamed into place, so a reader
 * never sees half an object. A filesystem cannot hold a file and a folder of the same
 * name, so unlike S3 a key cannot also be the folder of other keys (`a` and `a/b`).
 * contentType is not kept: readers get bytes back.
 *
 * @example new LocalFsObjectStore('/var/lib/selfdevop/objects')
 */
export class LocalFsObjectStore implements ObjectStore {
  readonly root: string;
  private readonly objectsDir: string;
  private readonly tmpDir: string;

  constructor(root: string) {
    if (typeof root !== 'string' || root === '')
      throw new Error('LocalFsObjectStore needs a root directory');
    this.root = path.resolve(root);
    // Temporary files live beside objects/, not inside it, so no key is reserved for them
    // and list() never sees a write in progress; same filesystem, so rename is atomic.
    this.objectsDir = path.join(this.root, 'objects');
    this.tmpDir = path.join(this.root, 'tmp');
  }

  async put(
    key: string,
    body: Uint8Array | string,
    _options?: { contentType?: string },
  ): Promise<void> {
    assertObjectKey(key);
    const target = this.pathOf(key);
    await mkdir(this.tmpDir, { recursive: true, mode: dirMode });
    const tmp = path.join(this.tmpDir, `${randomBytes(12).toString('hex')}.tmp`);
    const file = await open(tmp, 'wx', fileMode);
    try {
      await file.writeFile(bodyBytes(body));
      // Flushed before the rename, so after a crash the key holds the old or the new body.
      await file.sync();
    } finally {
      await file.close();
    }
    try {
      await this.moveIntoPlace(key, tmp, target);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    assertObjectKey(key);
    try {
      const data = await readFile(this.pathOf(key));
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } catch (e) {
      const code = errorCode(e);
      // ENOTDIR: a parent is an object; EISDIR: the key is only a folder of other keys.
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return null;
      throw e;
    }
  }

  async list(prefix: string): Promise<string[]> {
    assertObjectPrefix(prefix);
    // Only the folder holding the prefix's complete segments can contain matches.
    const folder = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const start = path.join(this.objectsDir, ...folder.split('/').filter(Boolean));
    let entries;
    try {
      entries = await readdir(start, { recursive: true, withFileTypes: true });
    } catch (e) {
      const code = errorCode(e);
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw e;
    }
    const keys: string[] = [];
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      const relative = path.relative(this.objectsDir, path.join(entry.parentPath, entry.name));
      const key = relative.split(path.sep).join('/');
      if (key.startsWith(prefix)) keys.push(key);
    }
    return keys.sort(compareKeys);
  }

  async delete(key: string): Promise<void> {
    assertObjectKey(key);
    try {
      await unlink(this.pathOf(key));
    } catch (e) {
      const code = errorCode(e);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return;
      throw e;
    }
    await this.pruneEmptyFolders(key);
  }

  async putStream(
    key: string,
    body: AsyncIterable<Uint8Array>,
    _options?: { contentType?: string },
  ): Promise<{ bytes: number }> {
    assertObjectKey(key);
    const target = this.pathOf(key);
    await mkdir(this.tmpDir, { recursive: true, mode: dirMode });
    // Named after its key, so a write whose process died can be found (discardPartial).
    const tmp = path.join(this.tmpDir, `${partialTag(key)}-${randomBytes(12).toString('hex')}.tmp`);
    const file = await open(tmp, 'wx', fileMode);
    let bytes = 0;
    try {
      try {
        // One chunk at a time: the source waits while the disk writes (backpressure).
        for await (const chunk of body) {
          await file.write(chunk);
          bytes += chunk.byteLength;
        }
        await file.sync();
      } finally {
        await file.close();
      }
      await this.moveIntoPlace(key, tmp, target);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    return { bytes };
  }

  async discardPartial(key: string): Promise<number> {
    assertObjectKey(key);
    let names: string[];
    try {
      names = await readdir(this.tmpDir);
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return 0;
      throw e;
    }
    const mine = names.filter((n) => n.startsWith(`${partialTag(key)}-`) && n.endsWith('.tmp'));
    for (const n of mine) await rm(path.join(this.tmpDir, n), { force: true });
    return mine.length;
  }

  async getStream(key: string): Promise<AsyncIterable<Uint8Array> | null> {
    assertObjectKey(key);
    let file;
    try {
      file = await open(this.pathOf(key), 'r');
      if (!(await file.stat()).isFile()) {
        await file.close();
        return null;
      }
    } catch (e) {
      await file?.close();
      const code = errorCode(e);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return null;
      throw e;
    }
    // Opened now, so a missing key answers null here rather than failing mid-read.
    return file.createReadStream({ autoClose: true, highWaterMark: 256 * 1024 });
  }

  private pathOf(key: string): string {
    const full = path.join(this.objectsDir, ...key.split('/'));
    // Key validation already rules out escapes; this keeps a future change from adding one.
    if (!full.startsWith(this.objectsDir + path.sep))
      throw new InvalidInput(`object key ${JSON.stringify(key)} is invalid`, { field: 'key' });
    return full;
  }

  private async moveIntoPlace(key: string, tmp: string, target: string): Promise<void> {
    // A concurrent delete may prune the folder between mkdir and rename: try again a
    // couple of times; anything else is a real failure.
    for (let attempt = 1; ; attempt++) {
      try {
        await mkdir(path.dirname(target), { recursive: true, mode: dirMode });
        await rename(tmp, target);
        return;
      } catch (e) {
        const code = errorCode(e);
        if (code === 'ENOENT' && attempt < 3) continue;
        if (code === 'ENOTDIR' || code === 'EEXIST') {
          throw new InvalidInput(
            `object key ${JSON.stringify(key)} cannot be stored: a shorter key on its path is an object, and on the local filesystem a key cannot also be a folder of other keys`,
            { field: 'key' },
          );
        }
        if (code === 'EISDIR') {
          throw new InvalidInput(
            `object key ${JSON.stringify(key)} cannot be stored: it is the folder of other keys, and on the local filesystem a key cannot also be a folder of other keys`,
            { field: 'key' },
          );
        }
        throw e;
      }
    }
  }

  private async pruneEmptyFolders(key: string): Promise<void> {
    // Folders left empty by a delete are removed so list() walks only live objects; a
    // folder that is not empty (or already gone) ends the climb.
    const segments = key.split('/');
    for (let depth = segments.length - 1; depth > 0; depth--) {
      try {
        await rmdir(path.join(this.objectsDir, ...segments.slice(0, depth)));
      } catch {
        return;
      }
    }
  }
}
