/**
 * SourceRepository on Debian's `git` CLI: `ls-remote` resolves refs, a shallow fetch of one
 * commit into a temporary bare repository and `git archive` stream a build context. Tokens
 * travel in an HTTP header set through the environment, deploy keys in a 0600 file of the
 * fetch's own temporary directory: never on a command line (other users of the host can
 * read those), never in a URL (git prints URLs), never in a log.
 */
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  chmod,
  lstat,
  lutimes,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gitHost, isFullSha, isSshUrl, sshAuthority } from '../../core/builds/git-source.ts';
import { GitHostKeyChanged, hostKeys } from '../../core/builds/host-keys.ts';
import {
  BuildsUnavailable,
  GitAccessDenied,
  GitPathNotFound,
  GitRefNotFound,
  GitUnreachable,
  SourceTooLarge,
} from '../../core/builds/errors.ts';
import type {
  GitRemote,
  SourceArchive,
  SourceCheckout,
  SourceRepository,
  SourceTree,
} from '../../core/ports.ts';
import { KeptCheckouts, type HeldCheckout, type Manifest } from './kept-checkouts.ts';
import { filterTar } from './tar-filter.ts';

/**
 * Every file of a checkout gets an mtime made from its content's hash, and every directory
 * one fixed time. BuildKit's file sync asks the client only for files whose stat (mode,
 * size, mtime) differs from its copy of the last build; a fresh checkout writes every file
 * "now", which would make every file look changed, and git keeps no per-file times (a
 * shallow fetch has no history to take a commit time from). A time from the blob id is the
 * same for the same content in every checkout, on any worker, after a restart; a changed
 * file gets another one (48 bits of the id: a collision also needs the same size). The
 * times lie between 2000 and 2009, never in the future for tools in the build.
 */
const checkoutEpochSeconds = 946_684_800;
function contentTime(hexId: string): number {
  const bits = BigInt(`0x${hexId.slice(0, 12)}`);
  const seconds = Number(bits >> 20n) & 0x0fff_ffff;
  const micros = Number(bits & 0xf_ffffn) % 1_000_000;
  return checkoutEpochSeconds + seconds + micros / 1_000_000;
}

export interface GitCliOptions {
  /** The git binary; `git` on PATH unless set. */
  gitBin?: string;
  /** ls-remote gives up after this long; default 30 000 ms. */
  resolveTimeoutMs?: number;
  /** The shallow fetch gives up after this long; default 600 000 ms. */
  fetchTimeoutMs?: number;
  /** Where fetches make their temporary directories; the OS's unless set. */
  tmpDir?: string;
  /**
   * Where fetched commits stay between builds: one bare repository per remote and
   * credential, so the next commit's fetch transfers only the objects that changed (an
   * application-code push sends a few blobs, not the vendored dependencies again). Unset:
   * every fetch starts from an empty repository.
   */
  mirrorDir?: string;
  /** A mirror whose objects outgrow this is started afresh; default 512 MiB. */
  mirrorMaxBytes?: number;
  /**
   * Where checkouts for BuildKit's file sync stay between builds, one per service and
   * sub-directory, updated in place to the next commit (only changed files written, so the
   * others keep the stat BuildKit compares). Unset: every checkout is written afresh.
   */
  checkoutDir?: string;
  /** The kept checkouts' total size; the least recently used go first. Default 1 GiB. */
  checkoutMaxBytes?: number;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** The ref a mirror keeps its last fetched commit under (see `fetchInto`). */
const mirrorRef = 'refs/selfdevop/last-fetched';

/** The most of a command's stderr an error message carries. */
const maxDetail = 400;

export class GitCliSource implements SourceRepository {
  private readonly options: GitCliOptions;
  /** Per mirror: the fetch in progress (fetches into one repository take turns) and its readers. */
  private readonly mirrors = new Map<
    string,
    { turn: Promise<unknown>; readers: number; overCap: boolean }
  >();

  private readonly kept: KeptCheckouts | null;
  /** Every tree offers `checkout`. */
  readonly checksOut = true;

  constructor(options: GitCliOptions = {}) {
    this.options = options;
    this.kept = options.checkoutDir
      ? new KeptCheckouts(options.checkoutDir, options.checkoutMaxBytes ?? 1024 * 1024 * 1024)
      : null;
  }

  async forgetCheckouts(owner: string): Promise<void> {
    await this.kept?.forget(owner);
  }

  async resolveRef(remote: GitRemote, ref: string): Promise<string> {
    if (isFullSha(ref)) return ref;
    const dir = await this.tempDir();
    try {
      const env = await this.env(remote, dir);
      const patterns = ref.startsWith('refs/')
        ? [ref]
        : [`refs/heads/${ref}`, `refs/tags/${ref}`, `refs/tags/${ref}^{}`];
      const run = await this.git(
        ['ls-remote', '--', remote.url, ...patterns],
        env,
        this.options.resolveTimeoutMs ?? 30_000,
      );
      if (run.timedOut || run.code !== 0) throw failure(remote, run);
      await learnHostKeys(remote, dir);
      const refs = new Map<string, string>();
      for (const line of run.stdout.split('\n')) {
        const [sha, name] = line.trim().split(/\s+/);
        if (sha && name && /^[0-9a-f]{40}$/.test(sha)) refs.set(name, sha);
      }
      // A branch wins over a tag of the same name (as git checkout picks); an annotated
      // tag is its peeled commit, not the tag object.
      const sha =
        patterns.length === 1
          ? (refs.get(`${ref}^{}`) ?? refs.get(ref))
          : (refs.get(`refs/heads/${ref}`) ??
            refs.get(`refs/tags/${ref}^{}`) ??
            refs.get(`refs/tags/${ref}`));
      if (!sha) throw new GitRefNotFound(ref, remote.url);
      return sha;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async archive(
    remote: GitRemote,
    sha: string,
    paths: { subdir: string; dockerfile: string },
    signal?: AbortSignal,
  ): Promise<SourceArchive> {
    const tree = await this.fetch(remote, sha, paths.subdir, signal);
    try {
      if ((await tree.read(paths.dockerfile)) === null) {
        const dockerfile = paths.subdir ? `${paths.subdir}/${paths.dockerfile}` : paths.dockerfile;
        throw new GitPathNotFound('Dockerfile', dockerfile, sha);
      }
      return { stream: tree.archive(), close: () => tree.close() };
    } catch (e) {
      await tree.close();
      throw e;
    }
  }

  async fetch(
    remote: GitRemote,
    sha: string,
    subdir: string,
    signal?: AbortSignal,
  ): Promise<SourceTree> {
    const dir = await this.tempDir();
    let mirror: { key: string; done: () => void } | null = null;
    // The kept checkout this tree wrote into, held until the tree is closed.
    let held: HeldCheckout | null = null;
    const close = async () => {
      mirror?.done();
      mirror = null;
      const h = held;
      held = null;
      await h?.release();
      await rm(dir, { recursive: true, force: true });
    };
    try {
      const env = await this.env(remote, dir);
      // Only the one commit, without history or tags: a build needs its tree and nothing else.
      // Into a mirror, the commit is kept under a ref: the next fetch offers it to the server
      // as a "have", so only the objects that changed are sent (a repository without refs
      // offers none, and the server sends the whole tree again: every vendored file, each
      // written as a loose object by unpack-objects on the build's clock).
      const fetchInto = (repo: string, keep: boolean) =>
        this.git(
          [
            '-C',
            repo,
            // No gc or maintenance after the fetch: it would run on a build's clock.
            '-c',
            'gc.auto=0',
            '-c',
            'maintenance.auto=false',
            'fetch',
            '-q',
            '--depth',
            '1',
            '--no-tags',
            '--',
            remote.url,
            keep ? `+${sha}:${mirrorRef}` : sha,
          ],
          env,
          this.options.fetchTimeoutMs ?? 600_000,
          signal,
        );
      let repo = '';
      let fetch: Run | null = null;
      if (this.options.mirrorDir) {
        mirror = await this.openMirror(remote, env);
        repo = this.mirrorPath(mirror.key);
        const key = mirror.key;
        const locked = (run: Run) =>
          run.code !== 0 && /\.lock'?: File exists|unable to (create|lock)/i.test(run.stderr);
        fetch = await this.inTurn(key, async () => {
          const run = await fetchInto(repo, true);
          // A fetch killed mid-write (a cancel, a timeout) leaves its lock files behind, as a
          // fetch of another process holds them: a mirror no other build here reads is
          // dropped and made again next time, so a stale lock never sticks.
          if ((run.timedOut || locked(run)) && this.mirrors.get(key)!.readers === 1)
            await rm(repo, { recursive: true, force: true });
          return run;
        });
        // Locked by another process: this fetch starts from empty instead.
        if (locked(fetch)) {
          mirror.done();
          mirror = null;
          fetch = null;
        }
      }
      if (fetch === null) {
        repo = path.join(dir, 'repo.git');
        const init = await this.git(['init', '-q', '--bare', repo], env, 30_000);
        if (init.code !== 0) throw new Error(`git init failed: ${detail(init)}`);
        fetch = await fetchInto(repo, false);
      }
      if (fetch.timedOut || fetch.code !== 0) {
        if (
          /not our ref|unadvertised object|couldn't find remote ref|no such remote ref/i.test(
            fetch.stderr,
          )
        )
          throw new GitRefNotFound(sha, remote.url);
        throw failure(remote, fetch);
      }
      await learnHostKeys(remote, dir);
      if (
        subdir &&
        (await this.git(['-C', repo, 'cat-file', '-e', `${sha}:${subdir}`], env, 30_000)).code !== 0
      )
        throw new GitPathNotFound('sub-directory', subdir, sha);
      const treeish = subdir ? `${sha}:${subdir}` : sha;
      // The tree's listing, made once (one `git ls-tree`) on first need: which files are there
      // (a missing one is read without a git process), their sizes (the weighing) and the
      // checkout's paths. A build's reads, weighing and checkout used to be a process each.
      let listing: Promise<Map<string, TreeRecord>> | null = null;
      const list = () =>
        (listing ??= (async () => {
          const all = new Map<string, TreeRecord>();
          for await (const r of this.treeRecords(repo, treeish, env)) all.set(r.path, r);
          return all;
        })());
      // A path as ls-tree prints it; another spelling (`./Dockerfile`) is left to git.
      const listable = (file: string) =>
        file !== '' && !file.startsWith('/') && path.posix.normalize(file) === file;
      // What the last weighing kept, for a checkout with the same filter.
      let listed: {
        exclude: ((path: string) => boolean) | undefined;
        records: TreeRecord[];
      } | null = null;
      return {
        has: async (file) => {
          if (!listable(file)) {
            const run = await this.git(
              ['-C', repo, 'cat-file', '-t', `${sha}:${subdir ? `${subdir}/` : ''}${file}`],
              env,
              30_000,
            );
            return run.code === 0 && run.stdout.trim() === 'blob';
          }
          return (await list()).get(file)?.type === 'blob';
        },
        read: async (file) => {
          if (listable(file) && (await list()).get(file)?.type !== 'blob') return null;
          // `cat-file blob` fails for a directory or a missing path alike: both are "no file".
          const run = await this.git(
            ['-C', repo, 'cat-file', 'blob', `${sha}:${subdir ? `${subdir}/` : ''}${file}`],
            env,
            30_000,
          );
          return run.code === 0 ? run.stdout : null;
        },
        size: async (exclude) => {
          // Only blob sizes, no content: a 2 GB repository is weighed without being read.
          const records: TreeRecord[] = [];
          let bytes = 0;
          let files = 0;
          for (const r of (await list()).values()) {
            if (exclude?.(r.path)) continue;
            records.push(r);
            if (r.type !== 'blob') continue;
            bytes += Number(r.size) || 0;
            files++;
          }
          listed = { exclude, records };
          return { bytes, files };
        },
        archive: (options = {}) => filterTar(this.tar(repo, treeish, env, signal), options),
        checkout: (options = {}) => {
          const last = listed;
          const records = last && last.exclude === options.exclude ? last.records : null;
          return this.checkout(repo, treeish, env, dir, options, records, (h) => (held = h));
        },
        close,
      };
    } catch (e) {
      await close();
      throw e;
    }
  }

  /**
   * The mirror of a remote, made on first use, counted as read until `done`. Keyed by the
   * URL and the credential: a service never reads objects another credential fetched.
   * A mirror grown past its cap is removed when no build reads it, and made again.
   */
  private async openMirror(
    remote: GitRemote,
    env: NodeJS.ProcessEnv,
  ): Promise<{ key: string; done: () => void }> {
    const credential = remote.credential
      ? 'token' in remote.credential
        ? `token:${remote.credential.token}`
        : `key:${remote.credential.privateKey}`
      : '';
    const key = createHash('sha256')
      .update(`${remote.url}\0${credential}`)
      .digest('hex')
      .slice(0, 32);
    let entry = this.mirrors.get(key);
    if (!entry)
      this.mirrors.set(key, (entry = { turn: Promise.resolve(), readers: 0, overCap: false }));
    entry.readers++;
    let released = false;
    const done = () => {
      if (released) return;
      released = true;
      entry.readers--;
      // Weighed once its reader is done, in the background: the next fetch drops it if over.
      void this.inTurn(key, async () => {
        const repo = this.mirrorPath(key);
        if (await exists(repo))
          entry.overCap = (await this.objectBytes(repo, env)) > this.mirrorCap();
      }).catch(() => undefined);
    };
    try {
      await this.inTurn(key, async () => {
        const repo = this.mirrorPath(key);
        if (await exists(repo)) {
          // Weighed after an earlier fetch (off the build's clock); dropped only while no
          // other build here reads it.
          if (!entry.overCap || entry.readers > 1) return;
          entry.overCap = false;
          await rm(repo, { recursive: true, force: true });
        }
        // Made beside it and renamed into place: nobody sees a half-made repository.
        await mkdir(this.options.mirrorDir!, { recursive: true, mode: 0o700 });
        const fresh = `${repo}.${randomBytes(4).toString('hex')}.new`;
        const init = await this.git(['init', '-q', '--bare', fresh], env, 30_000);
        if (init.code !== 0) throw new Error(`git init failed: ${detail(init)}`);
        await rename(fresh, repo).catch(async (e: NodeJS.ErrnoException) => {
          await rm(fresh, { recursive: true, force: true });
          // Another process made it first: theirs serves.
          if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
        });
      });
    } catch (e) {
      done();
      throw e;
    }
    return { key, done };
  }

  private mirrorPath(key: string): string {
    return path.join(this.options.mirrorDir!, `${key}.git`);
  }

  private mirrorCap(): number {
    return this.options.mirrorMaxBytes ?? 512 * 1024 * 1024;
  }

  /** Runs `fn` after every earlier turn on the mirror `key` (in this process) has ended. */
  private inTurn<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const entry = this.mirrors.get(key)!;
    const mine = entry.turn.then(fn, fn);
    entry.turn = mine.catch(() => undefined);
    return mine;
  }

  /** The bytes of a repository's objects, loose and packed, from `git count-objects`. */
  private async objectBytes(repo: string, env: NodeJS.ProcessEnv): Promise<number> {
    // Its own environment: the fetch's (HOME in its temporary directory) may be gone by now.
    const run = await this.git(
      ['-C', repo, 'count-objects', '-v'],
      { PATH: env.PATH, HOME: this.options.mirrorDir!, GIT_CONFIG_NOSYSTEM: '1', LC_ALL: 'C' },
      30_000,
    );
    if (run.code !== 0) return Infinity;
    const kib = (name: string) =>
      Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(run.stdout)?.[1] ?? 0);
    return (kib('size') + kib('size-pack') + kib('size-garbage')) * 1024;
  }

  async generateDeployKey(comment: string): Promise<{ privateKey: string; publicKey: string }> {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
    return {
      privateKey: openSshPrivateKey(pub, seed, comment),
      publicKey: openSshPublicKey(pub, comment),
    };
  }

  // ---------------------------------------------------------------- internals

  private tempDir(): Promise<string> {
    return mkdtemp(path.join(this.options.tmpDir ?? os.tmpdir(), 'sdo-git-'));
  }

  /**
   * The environment of every git command: no prompt, no user or system configuration, only
   * network transports (no file://, no ext:: commands, also through redirects and
   * submodules), and the credential.
   */
  private async env(remote: GitRemote, dir: string): Promise<NodeJS.ProcessEnv> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      GIT_TERMINAL_PROMPT: '0',
      GIT_ASKPASS: '/bin/false',
      SSH_ASKPASS: '/bin/false',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_ALLOW_PROTOCOL: 'https:http:ssh:git',
      LC_ALL: 'C',
    };
    const credential = remote.credential;
    const knownHosts = path.join(dir, 'known_hosts');
    // A pinned server must present a pinned key; an unpinned one is taken on first use and
    // its key handed back (learnedHostKeys) for the caller to pin.
    const pinned = remote.knownHosts?.trim() ? remote.knownHosts.trim() : null;
    if (pinned) await writeFile(knownHosts, `${pinned}\n`, { mode: 0o600 });
    const ssh = [
      'ssh',
      '-F',
      '/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      'ConnectTimeout=15',
      '-o',
      `StrictHostKeyChecking=${pinned ? 'yes' : 'accept-new'}`,
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'UpdateHostKeys=no',
      '-o',
      'HashKnownHosts=no',
    ];
    if (credential && 'privateKey' in credential) {
      const keyFile = path.join(dir, 'deploy-key');
      await writeFile(keyFile, credential.privateKey.trimEnd() + '\n', { mode: 0o600 });
      ssh.push('-o', 'IdentitiesOnly=yes', '-i', keyFile);
    }
    env.GIT_SSH_COMMAND = ssh.join(' ');
    if (credential && 'token' in credential) {
      const basic = Buffer.from(`x-access-token:${credential.token}`).toString('base64');
      env.GIT_CONFIG_COUNT = '1';
      env.GIT_CONFIG_KEY_0 = 'http.extraHeader';
      env.GIT_CONFIG_VALUE_0 = `Authorization: Basic ${basic}`;
    }
    return env;
  }

  private git(
    args: string[],
    env: NodeJS.ProcessEnv,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.options.gitBin ?? 'git', args, {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        if (stdout.length < 1_000_000) stdout += c;
      });
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr = (stderr + c).slice(-8 * 1024);
      });
      const kill = () => {
        timedOut = true;
        child.kill('SIGKILL');
      };
      const timer = setTimeout(kill, timeoutMs);
      signal?.addEventListener('abort', kill, { once: true });
      child.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', kill);
        reject(
          e.code === 'ENOENT'
            ? new BuildsUnavailable(
                `git is not installed (${this.options.gitBin ?? 'git'} not found)`,
              )
            : e,
        );
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', kill);
        resolve({ code, stdout, stderr, timedOut });
      });
    });
  }

  /**
   * The tree written for a build whose context is served as files: the kept paths listed by
   * `git ls-tree` (the weighing's listing when it used the same filter), written by one
   * `git checkout <tree> -- <paths>`, then given the modes `git archive` gives (0664, 0775:
   * its default umask 0002, so both paths build the same image) and content-derived mtimes
   * (see `contentTime`). Into a kept checkout (`keep`, when free and under the cap) only what
   * differs from its manifest is written and what left the tree removed, so an unchanged file
   * keeps its stat without a write; else into `<dir>/context`, fresh.
   */
  private async checkout(
    repo: string,
    treeish: string,
    env: NodeJS.ProcessEnv,
    dir: string,
    options: {
      exclude?: (path: string) => boolean;
      extra?: Record<string, string>;
      maxBytes?: number;
      keep?: { owner: string; name: string };
    },
    listed: TreeRecord[] | null,
    hold: (held: HeldCheckout) => void,
  ): Promise<SourceCheckout> {
    const entries: Manifest = new Map();
    let bytes = 0;
    const records = listed ?? this.treeRecords(repo, treeish, env);
    for await (const { mode, type, id, size, path: file } of records) {
      if (options.exclude?.(file) || options.extra?.[file] !== undefined) continue;
      // A submodule is an empty directory in `git archive`'s tar too.
      if (type !== 'blob' && type !== 'commit') continue;
      const n = Number(size) || 0;
      entries.set(file, { mode, id, size: n });
      bytes += n;
      if (options.maxBytes !== undefined && bytes > options.maxBytes)
        throw new SourceTooLarge(bytes, options.maxBytes);
    }
    const extras = new Set<string>();
    for (const [file, text] of Object.entries(options.extra ?? {})) {
      const id = createHash('sha1').update(text).digest('hex');
      entries.set(file, { mode: '100644', id, size: Buffer.byteLength(text) });
      extras.add(file);
      bytes += Buffer.byteLength(text);
    }
    const held =
      options.keep && this.kept
        ? await this.kept.hold(options.keep.owner, options.keep.name, bytes)
        : null;
    let out: string;
    if (held) {
      hold(held);
      out = held.tree;
    } else {
      out = path.join(dir, 'context');
      await mkdir(out, { mode: 0o775 });
    }
    const previous = held?.manifest ?? null;
    // What must be (re)written: new or changed entries, and kept ones whose stat is not the
    // one written (a file touched since): BuildKit would otherwise take the wrong content.
    const write = new Set<string>();
    const remove: string[] = [];
    if (previous) {
      for (const [file, old] of previous) {
        const now = entries.get(file);
        if (!now || now.mode !== old.mode || now.id !== old.id) remove.push(file);
      }
      const same = [...entries].filter(([file, e]) => {
        const old = previous.get(file);
        return old && old.mode === e.mode && old.id === e.id;
      });
      for (let i = 0; i < same.length; i += 64)
        await Promise.all(
          same.slice(i, i + 64).map(async ([file, e]) => {
            if (!(await intact(path.join(out, file), e))) write.add(file);
          }),
        );
      for (const file of entries.keys()) if (!previous.has(file)) write.add(file);
      for (const file of remove) if (entries.has(file)) write.add(file);
    } else for (const file of entries.keys()) write.add(file);
    if (previous && write.size === 0 && remove.length === 0) {
      await held!.commit(entries, bytes);
      return { dir: out, entries: entries.size, written: 0, removed: 0, kept: true };
    }
    await held?.begin();
    // Gone or changed paths first (a file may have become a directory or a link), then
    // directories they leave empty that the new tree does not hold.
    const dirs = new Set<string>();
    for (const file of entries.keys())
      for (let d = path.posix.dirname(file); d !== '.'; d = path.posix.dirname(d)) dirs.add(d);
    const emptied = new Set<string>();
    for (const file of [...remove, ...write]) {
      await rm(path.join(out, file), { recursive: true, force: true });
      for (let d = path.posix.dirname(file); d !== '.'; d = path.posix.dirname(d))
        if (!dirs.has(d)) emptied.add(d);
    }
    for (const d of [...emptied].sort((a, b) => b.length - a.length))
      await rm(path.join(out, d), { recursive: true, force: true });
    // One process: `checkout <tree> -- <paths>` with the paths as literal pathspecs, into an
    // index of the fetch's own (the mirror's is never touched, so builds do not meet).
    const blobs = [...write].filter((f) => !extras.has(f) && entries.get(f)!.mode !== '160000');
    if (blobs.length > 0) {
      const run = await this.gitWithInput(
        [
          '--git-dir',
          repo,
          '--work-tree',
          out,
          'checkout',
          treeish,
          '--pathspec-from-file=-',
          '--pathspec-file-nul',
        ],
        { ...env, GIT_INDEX_FILE: path.join(dir, 'context.index'), GIT_LITERAL_PATHSPECS: '1' },
        blobs.map((f) => `${f}\0`).join(''),
      );
      if (run.code !== 0) throw new Error(`git checkout failed: ${detail(run)}`);
    }
    const written = [...write];
    for (const file of written) {
      const e = entries.get(file)!;
      if (e.mode === '160000') await mkdir(path.join(out, file), { recursive: true });
      else if (extras.has(file)) {
        await mkdir(path.dirname(path.join(out, file)), { recursive: true });
        await writeFile(path.join(out, file), options.extra![file]!);
      }
    }
    // A few at a time: thousands of files are thousands of syscalls, not thousands at once.
    for (let i = 0; i < written.length; i += 64)
      await Promise.all(
        written.slice(i, i + 64).map(async (file) => {
          const e = entries.get(file)!;
          if (e.mode === '160000') return;
          const abs = path.join(out, file);
          const t = contentTime(e.id);
          if (e.mode === '120000') return lutimes(abs, t, t);
          await chmod(abs, e.mode === '100755' ? 0o775 : 0o664);
          await utimes(abs, t, t);
        }),
      );
    // Directories last (writing files moved their times): every directory of a fresh tree,
    // else those holding something written or removed.
    const touched = new Set<string>();
    for (const file of previous ? [...written, ...remove] : [...entries.keys()]) {
      // A submodule's directory is one of the tree's too.
      if (entries.get(file)?.mode === '160000') touched.add(file);
      for (let d = path.posix.dirname(file); d !== '.'; d = path.posix.dirname(d))
        if (dirs.has(d)) touched.add(d);
    }
    // A few side by side: a directory's mode and times are not its parent's content.
    const dirList = [...touched];
    for (let i = 0; i < dirList.length; i += 64)
      await Promise.all(
        dirList.slice(i, i + 64).map(async (d) => {
          const abs = path.join(out, d);
          await chmod(abs, 0o775);
          await utimes(abs, checkoutEpochSeconds, checkoutEpochSeconds);
        }),
      );
    await held?.commit(entries, bytes);
    return {
      dir: out,
      entries: entries.size,
      written: written.length,
      removed: remove.filter((f) => !entries.has(f)).length,
      kept: held !== null,
    };
  }

  /** `git ls-tree -r -l -z` of a tree, record by record as it streams (a tree may list millions). */
  private async *treeRecords(
    repo: string,
    treeish: string,
    env: NodeJS.ProcessEnv,
  ): AsyncGenerator<TreeRecord> {
    const child = spawn(
      this.options.gitBin ?? 'git',
      ['-C', repo, 'ls-tree', '-r', '-l', '-z', '--full-tree', treeish],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr = (stderr + c).slice(-4096);
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    let rest = '';
    try {
      for await (const chunk of child.stdout.setEncoding('utf8') as AsyncIterable<string>) {
        const records = (rest + chunk).split('\0');
        rest = records.pop() ?? '';
        for (const record of records) {
          const tab = record.indexOf('\t');
          if (tab === -1) continue;
          const [mode = '', type = '', id = '', size = ''] = record.slice(0, tab).split(/ +/);
          yield { mode, type, id, size, path: record.slice(tab + 1) };
        }
      }
      if ((await exited) !== 0)
        throw new Error(`git ls-tree failed: ${stderr.trim().slice(-maxDetail)}`);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }

  /** A git command fed `input` on its stdin. */
  private gitWithInput(args: string[], env: NodeJS.ProcessEnv, input: string): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.options.gitBin ?? 'git', args, {
        env,
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr = (stderr + c).slice(-8 * 1024);
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: '', stderr, timedOut: false });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    });
  }

  /** `git archive` of a tree as it is read; a failing archive ends the stream with its error. */
  private async *tar(
    repo: string,
    treeish: string,
    env: NodeJS.ProcessEnv,
    signal?: AbortSignal,
  ): AsyncGenerator<Uint8Array> {
    const child = spawn(
      this.options.gitBin ?? 'git',
      ['-C', repo, 'archive', '--format=tar', treeish],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr = (stderr + c).slice(-4096);
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    const kill = () => child.kill('SIGKILL');
    signal?.addEventListener('abort', kill, { once: true });
    try {
      for await (const chunk of child.stdout) yield chunk as Buffer;
      const code = await exited;
      if (code !== 0) throw new Error(`git archive failed: ${stderr.trim().slice(-maxDetail)}`);
    } finally {
      signal?.removeEventListener('abort', kill);
      // The reader stopped early (a cancelled build): the archive has nothing left to do.
      if (child.exitCode === null) kill();
    }
  }
}

/**
 * Whether a kept entry is on disk as a checkout wrote it: the same type, and for a file the
 * same size and content-derived mtime (what BuildKit compares), so a file changed since by
 * anything else is written again rather than trusted.
 */
async function intact(
  abs: string,
  e: { mode: string; id: string; size: number },
): Promise<boolean> {
  const st = await lstat(abs).catch(() => null);
  if (!st) return false;
  if (e.mode === '160000') return st.isDirectory();
  const timeOk = Math.abs(st.mtimeMs - contentTime(e.id) * 1000) < 1;
  if (e.mode === '120000') return st.isSymbolicLink() && timeOk;
  const perm = e.mode === '100755' ? 0o775 : 0o664;
  return st.isFile() && st.size === e.size && (st.mode & 0o777) === perm && timeOk;
}

/** One line of `git ls-tree -r -l`: mode, type (blob, commit), object id, size, path. */
interface TreeRecord {
  mode: string;
  type: string;
  id: string;
  size: string;
  path: string;
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

function detail(run: Run): string {
  const text = run.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .join('; ');
  return text.slice(-maxDetail) || `git exited with code ${run.code}`;
}

/**
 * After a contact that took the server's key on first use: the known_hosts lines ssh wrote,
 * handed back on the remote for the caller to pin. Nothing for other transports.
 */
async function learnHostKeys(remote: GitRemote, dir: string): Promise<void> {
  if (remote.knownHosts?.trim() || !isSshUrl(remote.url)) return;
  const text = await readFile(path.join(dir, 'known_hosts'), 'utf8').catch(() => '');
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length > 0) remote.learnedHostKeys = lines.join('\n');
}

/** ssh's words for a host key that is not the pinned one, as the error naming both fingerprints. */
function hostKeyFailure(remote: GitRemote, stderr: string): Error | null {
  if (
    !/host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|no \S+ host key is known/i.test(
      stderr,
    )
  )
    return null;
  const presented = /key sent by the remote host is\s*(SHA256:[A-Za-z0-9+/]+)/.exec(stderr)?.[1];
  const authority = sshAuthority(remote.url) ?? gitHost(remote.url) ?? remote.url;
  return new GitHostKeyChanged(
    authority.replace(/:22$/, ''),
    hostKeys(remote.knownHosts).map((k) => `${k.type} ${k.fingerprint}`),
    presented ?? null,
  );
}

/** What a failed ls-remote or fetch says, as the error that states it. */
function failure(remote: GitRemote, run: Run): Error {
  if (run.timedOut) return new GitUnreachable(remote.url, 'no answer in time');
  const changed = hostKeyFailure(remote, run.stderr);
  if (changed) return changed;
  const text = detail(run);
  if (
    /authentication failed|could not read (username|password)|terminal prompts disabled|permission denied \(publickey|HTTP (401|403)|access denied|invalid credentials|HTTP Basic: Access denied/i.test(
      run.stderr,
    )
  )
    return new GitAccessDenied(remote.url, text);
  return new GitUnreachable(remote.url, text);
}

// ---------------------------------------------------------------- OpenSSH key format

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const sshString = (b: Buffer | string) => {
  const buf = typeof b === 'string' ? Buffer.from(b) : b;
  return Buffer.concat([u32(buf.length), buf]);
};

function openSshPublicKey(pub: Buffer, comment: string): string {
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

/** An unencrypted `openssh-key-v1` private key, as `ssh-keygen -t ed25519 -N ''` writes it. */
function openSshPrivateKey(pub: Buffer, seed: Buffer, comment: string): string {
  const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const check = randomBytes(4);
  let body = Buffer.concat([
    check,
    check,
    sshString('ssh-ed25519'),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  const pad = (8 - (body.length % 8)) % 8;
  body = Buffer.concat([body, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const key = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    u32(1),
    sshString(publicBlob),
    sshString(body),
  ]);
  const lines = key.toString('base64').match(/.{1,70}/g)!;
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}
