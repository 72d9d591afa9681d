/**
 * The zero-config Node.js build: for a repository without a Dockerfile but with a
 * package.json and a lockfile, the Dockerfile the platform writes. Pure: it reads what the
 * tree holds and returns the Dockerfile as text (tested by exact equality), or the reason
 * no build can be planned.
 */
import { CoreError } from '../errors.ts';

/** Lockfiles in the order they are looked for; the first found decides the installer. */
export const nodeLockfiles = [
  'package-lock.json',
  'npm-shrinkwrap.json',
  'yarn.lock',
  'pnpm-lock.yaml',
] as const;
export type NodeLockfile = (typeof nodeLockfiles)[number];

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
  /** The base image with Node and npm that the platform ships (offline). */
  baseImage: string;
}

export interface NodeBuildPlan {
  dockerfile: string;
  /** One line for the release log: what was found and what the build does. */
  summary: string;
}

export function planNodeBuild(input: NodeBuildInput): NodeBuildPlan {
  const where = input.subdir ? `${input.subdir}/` : '';
  const noDockerfile = `no ${where}${input.dockerfile}`;
  let pkg: unknown;
  try {
    pkg = JSON.parse(input.packageJson);
  } catch (e) {
    throw new ZeroConfigRefused(
      `${noDockerfile}, and ${where}package.json is not valid JSON (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  if (typeof pkg !== 'object' || pkg === null || Array.isArray(pkg))
    throw new ZeroConfigRefused(`${noDockerfile}, and ${where}package.json is not an object`);
  const scripts = (pkg as { scripts?: unknown }).scripts;
  const script = (name: string) =>
    typeof scripts === 'object' &&
    scripts !== null &&
    typeof (scripts as Record<string, unknown>)[name] === 'string' &&
    ((scripts as Record<string, string>)[name] ?? '').trim() !== '';
  const lockfile = nodeLockfiles.find((l) => input.lockfiles.includes(l));
  if (!lockfile)
    throw new ZeroConfigRefused(
      `${noDockerfile}, and no lockfile beside ${where}package.json (${nodeLockfiles.join(', ')}): a zero-config build installs exactly what a lockfile pins; commit one (npm install writes package-lock.json) or add a Dockerfile`,
    );
  if (lockfile === 'yarn.lock' || lockfile === 'pnpm-lock.yaml')
    throw new ZeroConfigRefused(
      `${noDockerfile}, and ${where}${lockfile} needs ${lockfile === 'yarn.lock' ? 'yarn' : 'pnpm'}, which the offline base image ${input.baseImage} does not ship (it has npm): commit a package-lock.json or add a Dockerfile`,
    );
  if (!script('start'))
    throw new ZeroConfigRefused(
      `${noDockerfile}, and ${where}package.json has no "start" script: a zero-config build runs the app with npm start; add scripts.start (e.g. "node server.js") or a Dockerfile`,
    );
  const build = script('build');
  const lines = [
    `# Written by selfdevop: ${noDockerfile}; ${where}package.json and ${lockfile} found.`,
    `FROM ${input.baseImage}`,
    'WORKDIR /app',
    // The manifests alone first: a change of application code reuses the installed layer.
    `COPY package.json ${lockfile} ./`,
    'RUN npm ci --no-audit --no-fund',
    'COPY . .',
    ...(build ? ['RUN npm run build'] : []),
    'ENV NODE_ENV=production',
    'CMD ["npm", "start"]',
    '',
  ];
  return {
    dockerfile: lines.join('\n'),
    summary: `${noDockerfile}: zero-config Node.js build on ${input.baseImage} (npm ci from ${lockfile}${build ? ', npm run build' : ''}, npm start)`,
  };
}
