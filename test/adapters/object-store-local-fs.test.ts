import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInput } from '../../core/errors.ts';
import { LocalFsObjectStore } from '../../adapters/objects/local-fs.ts';
import { runObjectStoreContract } from '../contracts/object-store.case.ts';

let base: string;
let n = 0;
beforeAll(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), 'sdo-objects-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

const fresh = () => new LocalFsObjectStore(path.join(base, `store-${++n}`));

runObjectStoreContract({ make: fresh });

describe('LocalFsObjectStore', () => {
  it('keeps objects as files under <root>/objects, files 0600 in folders 0700', async () => {
    const store = fresh();
    await store.put('a/b/c.txt', 'hello');
    const file = path.join(store.root, 'objects', 'a', 'b', 'c.txt');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    for (const dir of [
      store.root,
      path.join(store.root, 'objects'),
      path.join(store.root, 'objects', 'a'),
      path.join(store.root, 'objects', 'a', 'b'),
      path.join(store.root, 'tmp'),
    ]) {
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
    }
  });

  it('leaves no temporary file behind', async () => {
    const store = fresh();
    await store.put('x', 'one');
    await store.put('x', 'two');
    expect(await readdir(path.join(store.root, 'tmp'))).toEqual([]);
  });

  it('reads objects written by another instance on the same root', async () => {
    const store = fresh();
    await store.put('shared/key', 'from one');
    const other = new LocalFsObjectStore(store.root);
    expect(new TextDecoder().decode((await other.get('shared/key')) ?? undefined)).toBe('from one');
  });

  it('removes folders a delete leaves empty, and keeps the others', async () => {
    const store = fresh();
    await store.put('a/b/c', 'x');
    await store.put('a/d', 'y');
    await store.delete('a/b/c');
    expect(await readdir(path.join(store.root, 'objects', 'a'))).toEqual(['d']);
    await store.delete('a/d');
    expect(await readdir(path.join(store.root, 'objects'))).toEqual([]);
  });

  it('refuses a key whose path runs through an object, naming the key', async () => {
    const store = fresh();
    await store.put('a', 'x');
    await expect(store.put('a/b', 'y')).rejects.toThrow(InvalidInput);
    await expect(store.put('a/b/c', 'y')).rejects.toThrow(
      /object key "a\/b\/c" cannot be stored: a shorter key on its path is an object/,
    );
    expect(await store.list('')).toEqual(['a']);
    expect(await readdir(path.join(store.root, 'tmp'))).toEqual([]);
  });

  it('refuses a key that is the folder of other keys', async () => {
    const store = fresh();
    await store.put('a/b', 'x');
    await expect(store.put('a', 'y')).rejects.toThrow(
      /object key "a" cannot be stored: it is the folder of other keys/,
    );
    expect(await store.get('a')).toBeNull();
    expect(await store.list('')).toEqual(['a/b']);
  });

  it('lists nothing under a prefix that names an object as a folder', async () => {
    const store = fresh();
    await store.put('a', 'x');
    expect(await store.list('a/')).toEqual([]);
  });

  it('ignores whatever is not a regular file in objects/', async () => {
    const store = fresh();
    await store.put('k/v', 'x');
    await writeFile(path.join(store.root, 'objects', 'k', 'w'), 'y', { mode: 0o600 });
    expect(await store.list('k/')).toEqual(['k/v', 'k/w']);
  });

  it('survives concurrent writes and deletes in one folder', async () => {
    const store = fresh();
    const work: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      work.push(store.put(`c/d/${i % 4}`, `v${i}`));
      work.push(store.delete(`c/d/${(i + 1) % 4}`));
    }
    await Promise.all(work);
    await store.put('c/d/final', 'ok');
    expect(await store.list('c/d/')).toContain('c/d/final');
    expect(await readdir(path.join(store.root, 'tmp'))).toEqual([]);
  });
});
