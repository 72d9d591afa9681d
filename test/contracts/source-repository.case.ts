/**
 * The contract every SourceRepository passes: refs resolve to commits (a branch, an
 * annotated tag's commit, a full sha as it is), mistakes are the errors that name them,
 * a private repository takes its token, and an archive is the sub-directory's tree alone.
 */
import { describe, expect, it } from 'vitest';
import { isCoreError } from '../../core/errors.ts';
import type { SourceArchive, SourceRepository } from '../../core/ports.ts';

/** The repositories a harness serves; each has these files on `main`. */
export const contractFiles: Record<string, string> = {
  'app/Dockerfile': 'FROM scratch\n',
  'app/www/version': 'one\n',
  'README.md': 'outside the context\n',
};

export interface SourceHarness {
  source: SourceRepository;
  /** A public repository: `main` with contractFiles, `feature` one commit on, tag `v1` (annotated) on main. */
  publicRepo(): Promise<{ url: string; main: string; feature: string }>;
  /** A repository that takes only `token`, with contractFiles on `main`. */
  privateRepo(): Promise<{ url: string; token: string; main: string }>;
  /** A URL where no repository answers. */
  unreachableUrl(): Promise<string>;
  /** The archive's files (path → content). */
  files(archive: SourceArchive): Promise<Record<string, string>>;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isCoreError(e)) return e.code;
    throw e;
  }
  throw new Error('expected a failure');
}

export function runSourceRepositoryContract(opts: { make: () => Promise<SourceHarness> }): void {
  describe('SourceRepository contract', () => {
    it('resolves a branch, an annotated tag and a full sha to commits, and names an unknown ref', async () => {
      const h = await opts.make();
      const repo = await h.publicRepo();
      const remote = { url: repo.url, credential: null };
      expect(await h.source.resolveRef(remote, 'main')).toBe(repo.main);
      expect(await h.source.resolveRef(remote, 'refs/heads/feature')).toBe(repo.feature);
      expect(await h.source.resolveRef(remote, 'v1')).toBe(repo.main);
      expect(await h.source.resolveRef(remote, repo.feature)).toBe(repo.feature);
      expect(await codeOf(h.source.resolveRef(remote, 'nope'))).toBe('git_ref_not_found');
      expect(await codeOf(h.source.resolveRef(remote, repo.main.slice(0, 7)))).toBe(
        'git_ref_not_found',
      );
    });

    it('says when the repository cannot be reached', async () => {
      const h = await opts.make();
      const remote = { url: await h.unreachableUrl(), credential: null };
      expect(await codeOf(h.source.resolveRef(remote, 'main'))).toBe('git_unreachable');
    });

    it('reads a private repository with its token only', async () => {
      const h = await opts.make();
      const repo = await h.privateRepo();
      expect(await codeOf(h.source.resolveRef({ url: repo.url, credential: null }, 'main'))).toBe(
        'git_access_denied',
      );
      expect(
        await codeOf(
          h.source.resolveRef({ url: repo.url, credential: { token: 'wrong' } }, 'main'),
        ),
      ).toBe('git_access_denied');
      const remote = { url: repo.url, credential: { token: repo.token } };
      expect(await h.source.resolveRef(remote, 'main')).toBe(repo.main);
      const archive = await h.source.archive(remote, repo.main, {
        subdir: 'app',
        dockerfile: 'Dockerfile',
      });
      try {
        expect(await h.files(archive)).toEqual({
          Dockerfile: 'FROM scratch\n',
          'www/version': 'one\n',
        });
      } finally {
        await archive.close();
      }
    });

    it('archives the sub-directory alone, or the whole tree, and names what is missing', async () => {
      const h = await opts.make();
      const repo = await h.publicRepo();
      const remote = { url: repo.url, credential: null };
      const sub = await h.source.archive(remote, repo.main, {
        subdir: 'app',
        dockerfile: 'Dockerfile',
      });
      expect(Object.keys(await h.files(sub)).sort()).toEqual(['Dockerfile', 'www/version']);
      await sub.close();
      const whole = await h.source.archive(remote, repo.main, {
        subdir: '',
        dockerfile: 'app/Dockerfile',
      });
      expect(Object.keys(await h.files(whole)).sort()).toEqual([
        'README.md',
        'app/Dockerfile',
        'app/www/version',
      ]);
      await whole.close();
      const missing = (subdir: string, dockerfile: string, sha = repo.main) =>
        codeOf(h.source.archive(remote, sha, { subdir, dockerfile }));
      expect(await missing('app', 'Containerfile')).toBe('git_path_not_found');
      expect(await missing('nope', 'Dockerfile')).toBe('git_path_not_found');
      expect(await missing('app', 'Dockerfile', 'f'.repeat(40))).toBe('git_ref_not_found');
    });

    it('opens a fetched tree: reads its files, weighs them, and streams it without what is excluded, with extra files, under a cap', async () => {
      const h = await opts.make();
      const repo = await h.publicRepo();
      const remote = { url: repo.url, credential: null };
      const tree = await h.source.fetch(remote, repo.main, 'app');
      try {
        expect(await tree.read('Dockerfile')).toBe('FROM scratch\n');
        expect(await tree.read('package.json')).toBeNull();
        expect(await tree.read('www')).toBeNull();
        expect(await tree.size()).toEqual({ bytes: 17, files: 2 });
        const exclude = (p: string) => p === 'www' || p.startsWith('www/');
        expect(await tree.size(exclude)).toEqual({ bytes: 13, files: 1 });
        const stream = tree.archive({ exclude, extra: { 'gen.Dockerfile': 'FROM gen\n' } });
        expect(await h.files({ stream, close: async () => {} })).toEqual({
          Dockerfile: 'FROM scratch\n',
          'gen.Dockerfile': 'FROM gen\n',
        });
        const capped = tree.archive({ maxBytes: 14 });
        expect(await codeOf(h.files({ stream: capped, close: async () => {} }))).toBe(
          'source_too_large',
        );
      } finally {
        await tree.close();
      }
      expect(await codeOf(h.source.fetch(remote, repo.main, 'nope'))).toBe('git_path_not_found');
    });

    it('makes a new ed25519 deploy key each time: an OpenSSH private key and its public line', async () => {
      const h = await opts.make();
      const a = await h.source.generateDeployKey('selfdevop-web');
      const b = await h.source.generateDeployKey('selfdevop-web');
      expect(a.publicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/=]+ selfdevop-web$/);
      expect(a.privateKey).toMatch(
        /^-----BEGIN OPENSSH PRIVATE KEY-----\n[\s\S]+\n-----END OPENSSH PRIVATE KEY-----\n$/,
      );
      expect(b.publicKey).not.toBe(a.publicKey);
      expect(b.privateKey).not.toBe(a.privateKey);
    });
  });
}
