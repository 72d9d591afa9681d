import { CoreError } from '../errors.ts';

/**
 * What can go wrong reading a repository, each stating the fact. The API answers them as
 * 4xx when it resolves a ref before queueing; in a build step they fail the release with
 * the same message in its log.
 */

/** The branch or tag is not in the repository (or a short sha was given). */
export class GitRefNotFound extends CoreError {
  constructor(ref: string, url: string) {
    super(
      'invalid',
      'git_ref_not_found',
      `gitRef: ${ref} is not a branch or tag of ${url} (a commit is named by its full 40-character sha)`,
      { field: 'gitRef', ref },
    );
  }
}

/** The server refused the credentials (or the repository is private and none were given). */
export class GitAccessDenied extends CoreError {
  constructor(url: string, detail: string) {
    super(
      'invalid',
      'git_access_denied',
      `repository ${url} refused access: ${detail}; set the service's git token or add its deploy key to the repository`,
      { field: 'git.url' },
    );
  }
}

/** The repository's server could not be reached, or answered that there is no such repository. */
export class GitUnreachable extends CoreError {
  constructor(url: string, detail: string) {
    super('invalid', 'git_unreachable', `repository ${url} could not be read: ${detail}`, {
      field: 'git.url',
    });
  }
}

/** The sub-directory or the Dockerfile is not in the commit. */
export class GitPathNotFound extends CoreError {
  constructor(what: 'sub-directory' | 'Dockerfile', path: string, sha: string) {
    super('invalid', 'git_path_not_found', `${what} ${path} is not in commit ${sha}`, {
      field: what === 'Dockerfile' ? 'git.dockerfile' : 'git.subdir',
    });
  }
}

/** A build asked of a process that cannot read repositories or build images. */
export class BuildsUnavailable extends CoreError {
  constructor(what: string) {
    super('unavailable', 'builds_unavailable', `builds are unavailable here: ${what}`);
  }
}

/** The build context (the repository's files a build would read) is over the install's cap. */
export class SourceTooLarge extends CoreError {
  constructor(bytes: number, maxBytes: number, exact = false) {
    const mb = (n: number) =>
      n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(1)} MB` : `${(n / 1024).toFixed(1)} KB`;
    super(
      'invalid',
      'source_too_large',
      `the build context is ${exact ? '' : 'more than '}${mb(bytes)}, over the cap of ${mb(maxBytes)} (BUILD_MAX_SOURCE_MB): leave large files out with .dockerignore, or raise the cap`,
      { bytes, maxBytes },
    );
  }
}
