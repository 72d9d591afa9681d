/**
 * The in-memory twin of GitCliSource: repositories as maps of refs to commits and commits
 * to files, with the same errors for the same mistakes (contract suite
 * test/contracts/source-repository.case.ts).
 */
import {
  GitAccessDenied,
  GitPathNotFound,
  GitRefNotFound,
  GitUnreachable,
  SourceTooLarge,
} from '../../core/builds/errors.ts';
import { isFullSha } from '../../core/builds/git-source.ts';
import type { GitRemote, SourceArchive, SourceRepository, SourceTree } from '../../core/ports.ts';

export interface MemoryRepository {
  /** Branch and tag names (without refs/heads/ or refs/tags/) → commit sha. */
  refs: Record<string, string>;
  /** Commit sha → path → content. */
  commits: Record<string, Record<string, string>>;
  /** The credential the repository takes; none for a public one. */
  token?: string;
  publicKey?: string;
}

export class MemorySource implements SourceRepository {
  private readonly repos = new Map<string, MemoryRepository>();
  private keys = 0;
  /** Private keys handed out, to their public lines: how a repository here checks a key. */
  private readonly keyPairs = new Map<string, string>();
  /** Archives not closed yet: a test can check that every fetch cleaned up. */
  open = 0;

  addRepository(url: string, repo: MemoryRepository): this {
    this.repos.set(url, repo);
    return this;
  }

  async resolveRef(remote: GitRemote, ref: string): Promise<string> {
    const repo = this.reach(remote);
    if (isFullSha(ref)) return ref;
    const name = ref.replace(/^refs\/(heads|tags)\//, '');
    const sha = repo.refs[name];
    if (!sha) throw new GitRefNotFound(ref, remote.url);
    return sha;
  }

  async archive(
    remote: GitRemote,
    sha: string,
    paths: { subdir: string; dockerfile: string },
  ): Promise<SourceArchive> {
    const tree = await this.fetch(remote, sha, paths.subdir);
    if ((await tree.read(paths.dockerfile)) === null) {
      await tree.close();
      const dockerfile = paths.subdir ? `${paths.subdir}/${paths.dockerfile}` : paths.dockerfile;
      throw new GitPathNotFound('Dockerfile', dockerfile, sha);
    }
    return { stream: tree.archive(), close: () => tree.close() };
  }

  async fetch(remote: GitRemote, sha: string, subdir: string): Promise<SourceTree> {
    const repo = this.reach(remote);
    const files = repo.commits[sha];
    if (!files) throw new GitRefNotFound(sha, remote.url);
    const prefix = subdir ? `${subdir}/` : '';
    if (prefix && !Object.keys(files).some((f) => f.startsWith(prefix)))
      throw new GitPathNotFound('sub-directory', subdir, sha);
    this.open++;
    let closed = false;
    const entries = Object.entries(files)
      .filter(([f]) => f.startsWith(prefix))
      .map(([f, content]) => [f.slice(prefix.length), content] as const);
    const size = (text: string) => new TextEncoder().encode(text).length;
    return {
      read: async (path) => entries.find(([f]) => f === path)?.[1] ?? null,
      size: async (exclude) => {
        const kept = entries.filter(([f]) => !exclude?.(f));
        return { bytes: kept.reduce((n, [, c]) => n + size(c), 0), files: kept.length };
      },
      // Not a real tar: one JSON line `[path, content]` per file, enough for a runtime that counts bytes.
      archive: async function* (options = {}) {
        let bytes = 0;
        const all = [...entries, ...Object.entries(options.extra ?? {})];
        for (const [f, content] of all) {
          if (options.exclude?.(f) && !(f in (options.extra ?? {}))) continue;
          bytes += size(content);
          if (options.maxBytes !== undefined && bytes > options.maxBytes)
            throw new SourceTooLarge(bytes, options.maxBytes);
          yield new TextEncoder().encode(`${JSON.stringify([f, content])}\n`);
        }
      },
      close: async () => {
        if (!closed) this.open--;
        closed = true;
      },
    };
  }

  async generateDeployKey(comment: string): Promise<{ privateKey: string; publicKey: string }> {
    const n = ++this.keys;
    const privateKey = `-----BEGIN OPENSSH PRIVATE KEY-----\nbWVtb3J5LWtleS0${n}\n-----END OPENSSH PRIVATE KEY-----\n`;
    const publicKey = `ssh-ed25519 AAAAmemory${n} ${comment}`;
    this.keyPairs.set(privateKey, publicKey);
    return { privateKey, publicKey };
  }

  private reach(remote: GitRemote): MemoryRepository {
    const repo = this.repos.get(remote.url);
    if (!repo) throw new GitUnreachable(remote.url, 'fatal: repository not found');
    const c = remote.credential;
    if (repo.token !== undefined && !(c && 'token' in c && c.token === repo.token))
      throw new GitAccessDenied(remote.url, 'HTTP 401: authentication failed');
    if (
      repo.publicKey !== undefined &&
      !(c && 'privateKey' in c && this.keyPairs.get(c.privateKey) === repo.publicKey)
    )
      throw new GitAccessDenied(remote.url, 'Permission denied (publickey)');
    return repo;
  }
}
