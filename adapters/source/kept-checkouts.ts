/**
 * The checkouts GitCliSource keeps between builds: one directory per service and
 * sub-directory, updated in place to the next commit so that a rebuild rewrites only the
 * files that changed (BuildKit's file sync then finds every other file's stat as it was).
 * Each holds its work tree, the manifest of what the tree holds (written last: a checkout
 * without one was cut off mid-write and starts again empty), a `size` file whose mtime is
 * its last use, and a lock while a build uses it. Bounded in total: the least recently used
 * are removed to make room.
 */
import { createHash } from 'node:crypto';
import {
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';

/** What a kept tree holds: per path its git mode, blob id and size (a submodule: mode 160000). */
export type Manifest = Map<string, { mode: string; id: string; size: number }>;

/** One kept checkout, locked for its holder until `release`. */
export interface HeldCheckout {
  /** The work tree. */
  tree: string;
  /** What the tree holds, or null when it is empty (new, or cut off mid-write and cleared). */
  manifest: Manifest | null;
  /** Marks the tree as being changed: until `commit`, it counts as cut off. */
  begin(): Promise<void>;
  /** Records what the tree now holds. */
  commit(manifest: Manifest, bytes: number): Promise<void>;
  release(): Promise<void>;
}

const manifestVersion = 1;
/** A lock this old is stale whatever process it names: far beyond a build's timeout. */
const staleLockMs = 6 * 60 * 60 * 1000;
const hashOf = (s: string, n: number) => createHash('sha256').update(s).digest('hex').slice(0, n);

export class KeptCheckouts {
  private readonly root: string;
  private readonly maxBytes: number;
  /** Checkouts this process holds (by directory), and owners to remove once released. */
  private readonly held = new Set<string>();
  private readonly forgotten = new Set<string>();
  /**
   * Each kept checkout's size as the last walk of the directory found it, kept up to date
   * with this process's own commits and removals; null until the first walk. A build's
   * checkout walks the directory again only when these say the cap may be passed: walking
   * every service's checkout (a few disk round trips each) on every build put the walk on
   * the build's clock, growing with the number of services. Another process sharing the
   * directory may have added some meanwhile: the walk before any eviction counts those.
   */
  private known: Map<string, number> | null = null;

  constructor(root: string, maxBytes: number) {
    this.root = root;
    this.maxBytes = maxBytes;
  }

  private ownerDir(owner: string): string {
    return path.join(this.root, hashOf(owner, 24));
  }

  /**
   * The kept checkout of `owner`/`name`, locked for the caller; null when another build
   * holds it (that build then gets a temporary checkout of its own) or when `bytes` would
   * not fit under the cap even alone. Others are evicted, least recently used first, until
   * this one fits.
   */
  async hold(owner: string, name: string, bytes: number): Promise<HeldCheckout | null> {
    if (bytes > this.maxBytes) return null;
    const base = path.join(this.ownerDir(owner), hashOf(name, 16));
    if (this.held.has(base)) return null;
    this.held.add(base);
    this.forgotten.delete(this.ownerDir(owner));
    try {
      if (!(await this.lock(base))) {
        this.held.delete(base);
        return null;
      }
    } catch (e) {
      this.held.delete(base);
      throw e;
    }
    const release = async () => {
      if (!this.held.has(base)) return;
      await rm(path.join(base, 'lock'), { force: true });
      this.held.delete(base);
      const ownerDir = path.dirname(base);
      if (
        this.forgotten.has(ownerDir) &&
        ![...this.held].some((h) => h.startsWith(`${ownerDir}/`))
      ) {
        this.forgotten.delete(ownerDir);
        this.unknow(ownerDir);
        await rm(ownerDir, { recursive: true, force: true });
      }
    };
    try {
      const tree = path.join(base, 'tree');
      // Side by side: eviction never touches this checkout, and each waits on the disk.
      const [manifest] = await Promise.all([
        readManifest(path.join(base, 'manifest.json')),
        this.evict(base, bytes),
      ]);
      if (manifest === null) {
        // New, or cut off mid-write: whatever is there is unknown, so it goes.
        await rm(tree, { recursive: true, force: true });
        await mkdir(tree, { mode: 0o775 });
      }
      return {
        tree,
        manifest,
        begin: () => rm(path.join(base, 'manifest.json'), { force: true }),
        commit: async (next, total) => {
          const file = path.join(base, 'manifest.json');
          await Promise.all([
            writeFile(
              `${file}.new`,
              JSON.stringify({ version: manifestVersion, entries: [...next] }),
            ).then(() => rename(`${file}.new`, file)),
            writeFile(path.join(base, 'size'), String(total)),
          ]);
          this.known?.set(base, total);
        },
        release,
      };
    } catch (e) {
      await release();
      throw e;
    }
  }

  /** Removes every checkout of `owner` (a deleted service); one in use goes once released. */
  async forget(owner: string): Promise<void> {
    const dir = this.ownerDir(owner);
    if ([...this.held].some((h) => h.startsWith(`${dir}/`))) {
      this.forgotten.add(dir);
      return;
    }
    this.unknow(dir);
    await rm(dir, { recursive: true, force: true });
  }

  /** Forgets the sizes of an owner's checkouts (removed). */
  private unknow(ownerDir: string): void {
    for (const dir of this.known?.keys() ?? [])
      if (dir.startsWith(`${ownerDir}/`)) this.known!.delete(dir);
  }

  /**
   * A lock file naming this process, taken with O_EXCL. One left by a process that is gone
   * (killed mid-build) is stale and taken over; one of a live process is its build's, unless
   * it is older than any build runs: after a restart in a new container, another process may
   * have the pid the lock names.
   */
  private async lock(base: string): Promise<boolean> {
    const file = path.join(base, 'lock');
    let made = false;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        // One call: on a loaded host each round trip to the disk's thread pool costs.
        await writeFile(file, String(process.pid), { flag: 'wx', mode: 0o600 });
        return true;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // The checkout's first build: its directory is made, and the lock tried again.
        if (code === 'ENOENT' && !made) {
          made = true;
          await mkdir(base, { recursive: true, mode: 0o700 });
          attempt--;
          continue;
        }
        if (code !== 'EEXIST') throw e;
      }
      const pid = Number(await readFile(file, 'utf8').catch(() => ''));
      const age = Date.now() - ((await stat(file).catch(() => null))?.mtimeMs ?? 0);
      // This process holds nothing there (`held` said so): its own lock is a leftover too.
      if (pid > 0 && pid !== process.pid && alive(pid) && age < staleLockMs) return false;
      await rm(file, { force: true });
    }
    return false;
  }

  /**
   * Removes the least recently used checkouts nobody holds until the others and `bytes`
   * more fit under the cap. Sizes are the ones recorded at each checkout's last commit.
   */
  private async evict(keep: string, bytes: number): Promise<void> {
    // Marks this one as the most recently used.
    const now = new Date();
    const used = utimes(path.join(keep, 'size'), now, now).catch(() => undefined);
    if (this.known) {
      let others = 0;
      for (const [dir, n] of this.known) if (dir !== keep) others += n;
      if (bytes + others <= this.maxBytes) return used;
    }
    // Walked side by side: each checkout is a few disk round trips of its own.
    const owners = await readdir(this.root).catch(() => [] as string[]);
    const dirs = (
      await Promise.all(
        owners.map(async (owner) => {
          const ownerDir = path.join(this.root, owner);
          const names = await readdir(ownerDir).catch(() => [] as string[]);
          return names.map((name) => path.join(ownerDir, name));
        }),
      )
    ).flat();
    const kept = await Promise.all(
      dirs.map(async (dir) => {
        const size = await stat(path.join(dir, 'size')).catch(() => null);
        const recorded = size
          ? Number(await readFile(path.join(dir, 'size'), 'utf8').catch(() => '0'))
          : 0;
        const locked = this.held.has(dir) || (await exists(path.join(dir, 'lock')));
        return {
          dir,
          bytes: Number.isFinite(recorded) ? recorded : 0,
          usedMs: size?.mtimeMs ?? 0,
          locked,
        };
      }),
    );
    await used;
    this.known = new Map(kept.map((k) => [k.dir, k.bytes]));
    const others = kept.filter((k) => k.dir !== keep);
    let total = bytes + others.reduce((n, k) => n + k.bytes, 0);
    for (const k of others.sort((a, b) => a.usedMs - b.usedMs)) {
      if (total <= this.maxBytes) break;
      if (k.locked) continue;
      await rm(k.dir, { recursive: true, force: true });
      await rmdir(path.dirname(k.dir)).catch(() => undefined);
      this.known.delete(k.dir);
      total -= k.bytes;
    }
  }
}

async function readManifest(file: string): Promise<Manifest | null> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as {
      version?: number;
      entries?: [string, { mode: string; id: string; size: number }][];
    };
    if (parsed.version !== manifestVersion || !Array.isArray(parsed.entries)) return null;
    return new Map(parsed.entries);
  } catch {
    return null;
  }
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
