/**
 * The zero-config Node.js build: for a repository without a Dockerfile but with a
 * package.json and a lockfile, the Dockerfile the platform writes. Pure: it reads what the
 * tree holds and returns the Dockerfile as text (tested by exact equality), or the reason
 * no build can be planned.
 */
import { CoreError } from '../errors.ts';

/** Lockfiles looked for beside package.json; which ones are there decides the installer. */
export const nodeLockfiles = [
  'package-lock.json',
  'npm-shrinkwrap.json',
  'yarn.lock',
  'pnpm-lock.yaml',
  'bun.lock',
  'bun.lockb',
] as const;
export type NodeLockfile = (typeof nodeLockfiles)[number];

/**
 * Package-manager configuration read beside package.json: copied before the install when
 * present (a registry scope, an offline mirror, a pinned yarn release), and read for the
 * paths they name.
 */
export const nodeConfigFiles = [
  '.npmrc',
  '.yarnrc',
  '.yarnrc.yml',
  '.pnpmfile.cjs',
  'pnpm-workspace.yaml',
] as const;
export type NodeConfigFile = (typeof nodeConfigFiles)[number];

/**
 * The installers a zero-config build runs, each shipped in the offline base image (npm with
 * Node; yarn classic, yarn berry as `yarn-berry` and pnpm vendored from the npm registry's
 * tarballs when the image is built, since corepack cannot download them on a node).
 */
export type NodeInstaller = 'npm' | 'yarn' | 'yarn-berry' | 'pnpm';

interface InstallerPlan {
  /** Installs exactly what the lockfile pins, refusing to change it. */
  install: string;
  /** The command that runs a package.json script (`<run> build`). */
  run: string;
  /** The container's command. */
  start: string[];
  /** Configuration files it reads. */
  config: NodeConfigFile[];
}

const installers: Record<NodeInstaller, InstallerPlan> = {
  npm: {
    install: 'npm ci --no-audit --no-fund',
    run: 'npm run',
    start: ['npm', 'start'],
    config: ['.npmrc'],
  },
  yarn: {
    install: 'yarn install --frozen-lockfile --non-interactive',
    run: 'yarn run',
    start: ['yarn', 'start'],
    config: ['.npmrc', '.yarnrc'],
  },
  'yarn-berry': {
    install: 'yarn-berry install --immutable',
    run: 'yarn-berry run',
    start: ['yarn-berry', 'start'],
    config: ['.yarnrc.yml'],
  },
  pnpm: {
    install: 'pnpm install --frozen-lockfile',
    run: 'pnpm run',
    start: ['pnpm', 'start'],
    config: ['.npmrc', '.pnpmfile.cjs', 'pnpm-workspace.yaml'],
  },
};

/** The installer family each lockfile belongs to (yarn.lock's generation is read from its text). */
const familyOf: Record<NodeLockfile, 'npm' | 'yarn' | 'pnpm' | 'bun'> = {
  'package-lock.json': 'npm',
  'npm-shrinkwrap.json': 'npm',
  'yarn.lock': 'yarn',
  'pnpm-lock.yaml': 'pnpm',
  'bun.lock': 'bun',
  'bun.lockb': 'bun',
};

/** The file name the generated Dockerfile gets in the build context (beside the sources). */
export const generatedDockerfileName = '.selfdevop.Dockerfile';

/** A zero-config build that cannot be planned, naming what the repository lacks. */
export class ZeroConfigRefused extends CoreError {
  constructor(message: string) {
    super('invalid', 'zero_config_refused', message);
  }
}

export interface NodeBuildInput {
  /** Where in the repository the context is (`app`), for messages; '' for the root. */
  subdir: string;
  /** The Dockerfile path that was looked for and not found, for messages. */
  dockerfile: string;
  /** package.json's text. */
  packageJson: string;
  /** Which lockfiles the tree has at its root. */
  lockfiles: NodeLockfile[];
  /**
   * The texts of yarn.lock (its head is enough: it tells yarn classic from berry) and of the
   * package-manager configuration files present; a file absent here is absent from the tree.
   */
  files?: Partial<Record<'yarn.lock' | NodeConfigFile, string>>;
  /** The base image with Node, npm, yarn, yarn-berry and pnpm that the platform ships (offline). */
  baseImage: string;
}

export interface NodeBuildPlan {
  dockerfile: string;
  /** One line for the release log: what was found and what the build does. */
  summary: string;
  installer: NodeInstaller;
}

/** A path a manifest or configuration names, relative to the context; null when outside it. */
function insideContext(raw: string): string | null {
  const p = raw
    .trim()
    .replace(/^["']|["']$/g, '')
    .replace(/^\.\//, '')
    .replace(/\/+$/, '');
  if (!p || p === '.' || p.startsWith('/') || p.startsWith('~') || /^[a-z]+:/i.test(p)) return null;
  const parts = p.split('/');
  if (parts.includes('..') || parts.includes('.')) return null;
  return p;
}

/** `file:`, `link:` and `portal:` dependencies: local paths the install reads, in declaration order. */
function localDependencies(pkg: Record<string, unknown>): { name: string; path: string }[] {
  const out: { name: string; path: string }[] = [];
  for (const field of ['dependencies', 'devDependencies', 'optionalDependencies']) {
    const deps = pkg[field];
    if (typeof deps !== 'object' || deps === null) continue;
    for (const [name, spec] of Object.entries(deps as Record<string, unknown>)) {
      if (typeof spec !== 'string') continue;
      const m = /^(?:file|link|portal):(.*)$/.exec(spec.trim());
      if (m) out.push({ name, path: m[1]! });
    }
  }
  return out;
}

/** Paths the package managers' configuration names that the install reads (mirrors, releases, stores). */
function configuredPaths(
  installer: NodeInstaller,
  files: NonNullable<NodeBuildInput['files']>,
): string[] {
  const found: string[] = [];
  const yarnrc = files['.yarnrc'];
  if (installer === 'yarn' && yarnrc !== undefined) {
    // yarn classic's offline mirror: `yarn-offline-mirror "./npm-packages-offline-cache"`.
    for (const m of yarnrc.matchAll(/^\s*yarn-offline-mirror\s+(\S+)\s*$/gm)) found.push(m[1]!);
  }
  const yml = files['.yarnrc.yml'];
  if (installer === 'yarn-berry' && yml !== undefined) {
    // The repository's own yarn release, its plugins, and a committed cache (zero-installs).
    for (const m of yml.matchAll(/^\s*(?:yarnPath|cacheFolder|-\s*path|path)\s*:\s*(\S+)\s*$/gm))
      found.push(m[1]!);
    if (/^\s*enableGlobalCache\s*:\s*false\s*$/m.test(yml) && !/^\s*cacheFolder\s*:/m.test(yml))
      found.push('.yarn/cache');
  }
  const npmrc = files['.npmrc'];
  if (installer === 'pnpm' && npmrc !== undefined) {
    // A pnpm store committed beside the project: `store-dir=.pnpm-store`.
    for (const m of npmrc.matchAll(/^\s*store-dir\s*=\s*(\S+)\s*$/gm)) found.push(m[1]!);
  }
  // A path outside the context (a machine-wide cache) is the image's business, not the copy's.
  return found.flatMap((p) => insideContext(p) ?? []);
}

/** The installer `packageManager` (`pnpm@9.15.0+sha…`) names, or its raw name when unknown. */
function declaredManager(pkg: Record<string, unknown>): string | null {
  const pm = pkg.packageManager;
  if (typeof pm !== 'string' || !pm.trim()) return null;
  return pm.trim().split('@')[0]!.toLowerCase();
}

const jsonCopy = (path: string) => `COPY ${JSON.stringify([path, path]).replace(/,/g, ', ')}`;

export function planNodeBuild(input: NodeBuildInput): NodeBuildPlan {
  const where = input.subdir ? `${input.subdir}/` : '';
  const noDockerfile = `no ${where}${input.dockerfile}`;
  const files = input.files ?? {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(input.packageJson);
  } catch (e) {
    throw new ZeroConfigRefused(
      `${noDockerfile}, and ${where}package.json is not valid JSON (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new ZeroConfigRefused(`${noDockerfile}, and ${where}package.json is not an object`);
  const pkg = parsed as Record<string, unknown>;
  const scripts = pkg.scripts;
  const script = (name: string) =>
    typeof scripts === 'object' &&
    scripts !== null &&
    typeof (scripts as Record<string, unknown>)[name] === 'string' &&
    ((scripts as Record<string, string>)[name] ?? '').trim() !== '';
  const present = nodeLockfiles.filter((l) => input.lockfiles.includes(l));
  if (present.length === 0)
    throw new ZeroConfigRefused(
      `${noDockerfile}, and no lockfile beside ${where}package.json (${nodeLockfiles.join(', ')}): a zero-config build installs exactly what a lockfile pins; commit one (npm install writes package-lock.json) or add a Dockerfile`,
    );
  const families = [...new Set(present.map((l) => familyOf[l]))];
  const declared = declaredManager(pkg);
  const named = (fs: string[]) =>
    fs.map((f) => `${present.filter((l) => familyOf[l] === f).join(' and ')} (${f})`).join(', ');
  let family = families[0]!;
  if (families.length > 1) {
    // Two package managers' lockfiles: one is stale, and installing from the wrong one would
    // deploy other versions than the team tested. packageManager settles it; nothing else does.
    if (!declared || !families.includes(declared as (typeof families)[number]))
      throw new ZeroConfigRefused(
        `${noDockerfile}, and ${where ? `${where} ` : 'the repository root '}has lockfiles of several package managers: ${named(families)}; a zero-config build cannot tell which one the project uses: delete the stale lockfile, or name the package manager in ${where}package.json's "packageManager" (e.g. "pnpm@9.15.9")`,
      );
    family = declared as (typeof families)[number];
  } else if (declared && declared !== family && ['npm', 'yarn', 'pnpm', 'bun'].includes(declared)) {
    throw new ZeroConfigRefused(
      `${noDockerfile}, and ${where}package.json's "packageManager" names ${declared}, but the lockfile is ${named(families)}: commit ${declared}'s lockfile or correct "packageManager"`,
    );
  }
  if (family === 'bun')
    throw new ZeroConfigRefused(
      `${noDockerfile}, and ${where}${named(['bun'])} needs bun, which the offline base image ${input.baseImage} does not ship (it has npm, yarn and pnpm): commit a package-lock.json, yarn.lock or pnpm-lock.yaml, or add a Dockerfile`,
    );
  const installer: NodeInstaller =
    family === 'yarn'
      ? /^__metadata:/m.test(files['yarn.lock'] ?? '')
        ? 'yarn-berry'
        : 'yarn'
      : family;
  const plan = installers[installer];
  const lockfiles = present.filter((l) => familyOf[l] === family);
  if (!script('start'))
    throw new ZeroConfigRefused(
      `${noDockerfile}, and ${where}package.json has no "start" script: a zero-config build runs the app with ${plan.start.join(' ')}; add scripts.start (e.g. "node server.js") or a Dockerfile`,
    );
  const local: string[] = [];
  for (const dep of localDependencies(pkg)) {
    const path = insideContext(dep.path);
    if (path === null)
      throw new ZeroConfigRefused(
        `${noDockerfile}, and ${where}package.json's dependency ${dep.name} is ${JSON.stringify(dep.path)}, outside the build context ${input.subdir || 'the repository root'}: vendor it inside, or add a Dockerfile`,
      );
    local.push(path);
  }
  const configs = plan.config.filter((f) => files[f] !== undefined);
  const paths = [...new Set([...configuredPaths(installer, files), ...local])];
  // Workspaces install every member: their manifests are all over the tree, so the whole
  // tree goes in before the install (a code change then reinstalls; correct before fast).
  const workspaces = pkg.workspaces !== undefined || files['pnpm-workspace.yaml'] !== undefined;
  const build = script('build');
  const lines = [
    `# Written by selfdevop: ${noDockerfile}; ${where}package.json and ${lockfiles.join(', ')} found.`,
    `FROM ${input.baseImage}`,
    'WORKDIR /app',
    ...(workspaces
      ? ['COPY . .']
      : [
          // The manifests alone first (and what the install reads: configuration, vendored
          // packages, offline mirrors): a change of application code reuses the installed layer.
          `COPY ${['package.json', ...lockfiles, ...configs].join(' ')} ./`,
          ...paths.map(jsonCopy),
        ]),
    `RUN ${plan.install}`,
    ...(workspaces ? [] : ['COPY . .']),
    ...(build ? [`RUN ${plan.run} build`] : []),
    'ENV NODE_ENV=production',
    `CMD ${JSON.stringify(plan.start).replace(/,/g, ', ')}`,
    '',
  ];
  // The log line names the install without its quieting flags.
  const short = plan.install.replace(/ --no-audit --no-fund| --non-interactive/g, '');
  return {
    dockerfile: lines.join('\n'),
    summary: `${noDockerfile}: zero-config Node.js build on ${input.baseImage} (${short} from ${lockfiles.join(' and ')}${workspaces ? ', workspaces: the whole tree before the install' : ''}${build ? `, ${plan.run} build` : ''}, ${plan.start.join(' ')})`,
    installer,
  };
}
