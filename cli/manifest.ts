import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { z } from 'zod';
import { CliError } from './config.ts';

/**
 * `selfdevop.yml`, in the spirit of Kamal's deploy.yml: the project and its services, so
 * `selfdevop deploy` can create what is missing and ship the image.
 *
 * @example
 * project: shop
 * services:
 *   web:
 *     image: registry.example.com/shop/web:1.4.2
 *     port: 8080
 *   api:
 *     git: { url: https://git.example.com/shop/api.git, ref: main, subdir: api }
 *     port: 3000
 *     healthcheck: /up
 *     migrate: bin/rails db:migrate
 *     strategy: blue_green
 *     env: { RAILS_LOG_TO_STDOUT: "1" }
 */
/** A service built from git; its token or deploy key is set with `selfdevop services git`, never here. */
const gitSchema = z.strictObject({
  url: z.string().min(1),
  ref: z.string().min(1).optional(),
  subdir: z.string().optional(),
  dockerfile: z.string().min(1).optional(),
  buildArgs: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String))
    .optional(),
});

const serviceSchema = z.strictObject({
  image: z.string().min(1).optional(),
  git: gitSchema.optional(),
  port: z.number().int().min(1).max(65535),
  healthcheck: z.string().default('/health'),
  migrate: z.string().min(1).nullish(),
  strategy: z.enum(['blue_green', 'replace']).optional(),
  env: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String))
    .optional(),
  health: z
    .strictObject({
      intervalMs: z.number().optional(),
      timeoutMs: z.number().optional(),
      successes: z.number().optional(),
      deadlineMs: z.number().optional(),
    })
    .optional(),
  memoryMb: z.number().optional(),
  cpus: z.number().optional(),
  warmSeconds: z.number().optional(),
  drainSeconds: z.number().optional(),
});

const manifestSchema = z.strictObject({
  project: z.string().min(1),
  environment: z.string().min(1).default('production'),
  services: z
    .record(
      z.string(),
      serviceSchema.refine((s) => s.image !== undefined || s.git !== undefined, {
        message: 'needs an image or a git source (git: { url: … })',
      }),
    )
    .refine((m) => Object.keys(m).length > 0, 'must name at least one service'),
});

export type ServiceManifest = z.infer<typeof serviceSchema>;
export type Manifest = z.infer<typeof manifestSchema>;

export const defaultManifestFile = 'selfdevop.yml';

export function parseManifest(text: string, file = defaultManifestFile): Manifest {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (e) {
    throw new CliError(`${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where =
      issue.path.join('.') ||
      (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : 'document');
    throw new CliError(`${file}: ${where}: ${issue.message}`);
  }
  return parsed.data;
}

export async function readManifest(file = defaultManifestFile): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CliError(
        `${file} not found: write one (see selfdevop deploy --help) or pass -f FILE`,
      );
    }
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
  }
  return parseManifest(text, file);
}

/** The body of POST /api/services for a manifest entry. */
export function serviceBody(
  projectId: string,
  name: string,
  s: ServiceManifest,
): Record<string, unknown> {
  return {
    projectId,
    name,
    ...(s.image !== undefined ? { image: s.image } : {}),
    ...(s.git !== undefined ? { git: s.git } : {}),
    containerPort: s.port,
    healthcheckPath: s.healthcheck,
    ...(s.migrate ? { migrateCommand: s.migrate } : {}),
    ...(s.strategy ? { strategy: s.strategy } : {}),
    ...(s.env ? { env: s.env } : {}),
    ...(s.health ? { health: s.health } : {}),
    ...(s.memoryMb !== undefined ? { memoryMb: s.memoryMb } : {}),
    ...(s.cpus !== undefined ? { cpus: s.cpus } : {}),
    ...(s.warmSeconds !== undefined ? { warmSeconds: s.warmSeconds } : {}),
    ...(s.drainSeconds !== undefined ? { drainSeconds: s.drainSeconds } : {}),
  };
}
