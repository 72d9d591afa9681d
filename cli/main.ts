#!/usr/bin/env node
/**
 * `selfdevop`: the command-line client of the public API (API.md). Every command is a few
 * API calls; errors are the API's own message on one line, and the exit code says whether
 * it worked (0), failed (1) or was called wrongly (2).
 */
import type { Command, CommandContext } from './command.ts';
import { apiKeys } from './commands/api-keys.ts';
import { audit } from './commands/audit.ts';
import { dataServices } from './commands/data-services.ts';
import { controlBackups } from './commands/control-backups.ts';
import { deploy } from './commands/deploy.ts';
import { deployJobs } from './commands/deploy-jobs.ts';
import { domains } from './commands/domains.ts';
import { environments } from './commands/environments.ts';
import { invites } from './commands/invites.ts';
import { login } from './commands/login.ts';
import { members } from './commands/members.ts';
import { cancel, logs, releases, rollback } from './commands/releases.ts';
import { nodes } from './commands/nodes.ts';
import { scale } from './commands/scale.ts';
import { orgs } from './commands/orgs.ts';
import { projects } from './commands/projects.ts';
import { secrets } from './commands/secrets.ts';
import { services } from './commands/services.ts';
import { webhooks } from './commands/webhooks.ts';
import { jobs } from './commands/jobs.ts';
import { notificationChannels } from './commands/notification-channels.ts';
import { registries } from './commands/registries.ts';
import { alerts } from './commands/alerts.ts';
import { edge } from './commands/edge.ts';
import { CliError, processEnv } from './config.ts';
import { stdio, type Output } from './output.ts';

export const commands: Command[] = [
  login,
  deploy,
  scale,
  releases,
  rollback,
  cancel,
  logs,
  domains,
  secrets,
  services,
  nodes,
  projects,
  environments,
  deployJobs,
  webhooks,
  jobs,
  notificationChannels,
  registries,
  alerts,
  edge,
  dataServices,
  controlBackups,
  apiKeys,
  orgs,
  audit,
  members,
  invites,
];

function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return `selfdevop: deploy and operate apps on a selfdevop control plane

Usage: selfdevop <command> [options]

Commands:
${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run selfdevop <command> --help for its options. Read commands take --json.
Credentials: selfdevop login, or SELFDEVOP_URL and SELFDEVOP_TOKEN (and SELFDEVOP_ORG).

Start here:
  echo "$KEY" | selfdevop login --url http://127.0.0.1:3000
  selfdevop nodes add local --docker-host unix:///var/run/docker.sock --address 127.0.0.1
  selfdevop deploy`;
}

/** Runs one command line; returns the exit code (the process entry point is below). */
export async function main(
  argv: string[],
  io: { o?: Output; env?: NodeJS.ProcessEnv; stdin?: CommandContext['stdin'] } = {},
) {
  const o = io.o ?? stdio;
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    o.out(overview());
    return name ? 0 : 2;
  }
  if (name === '--version') {
    o.out('selfdevop 0.1.0');
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    o.err(`selfdevop: unknown command ${name}; run selfdevop --help`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    o.out(command.help);
    return 0;
  }
  try {
    return await command.run({
      args,
      o,
      env: io.env ?? processEnv(),
      stdin: io.stdin ?? process.stdin,
    });
  } catch (e) {
    if (e instanceof CliError) {
      o.err(`selfdevop ${name}: ${e.message}`);
      return e.exitCode;
    }
    o.err(`selfdevop ${name}: unexpected error: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
