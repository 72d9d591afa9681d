/**
 * One name per subject in every layer (ARCHITECTURE.md): every subject with an API route
 * file has a core folder, a CLI command and a dashboard view of the same name, so an
 * engineer or a CI pipeline can do from the CLI, and an on-call engineer from the
 * dashboard, whatever the API allows. The exceptions are listed below with the reason and
 * the file that carries the subject instead; an exception that is no longer needed fails
 * too, so the list cannot go stale.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commands } from '../../cli/main.ts';

const root = join(import.meta.dirname, '..', '..');
const routesDir = join(root, 'functions', 'api', 'routes');
const viewsDir = join(root, 'functions', 'api', 'dashboard', 'views');
const commandsDir = join(root, 'cli', 'commands');
const coreDir = join(root, 'core');

const names = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -'.ts'.length))
    .sort();

type Layer = 'cli' | 'dashboard';

/** A subject some layer carries under another name: where it lives instead, and why. */
interface Exception {
  layer: Layer;
  subject: string;
  /** The file (without .ts) in that layer that carries the subject. */
  carriedBy: string;
  why: string;
}

const exceptions: Exception[] = [
  {
    layer: 'cli',
    subject: 'auth',
    carriedBy: 'login',
    // A CLI signs in with an API key, not a password: signup and password login are for
    // people in a browser; logout of a key is `api-keys revoke`.
    why: 'the CLI authenticates with an API key; `selfdevop login` stores it',
  },
  {
    layer: 'dashboard',
    subject: 'deploy-jobs',
    carriedBy: 'releases',
    // A deploy job is the queue's record of a release's work; a person reads the same work
    // as the release page's steps and log, so a second page would show it twice.
    why: 'the release page shows the same work step by step',
  },
];

/** Files in a layer that are not a route subject, and why they exist. */
const extras: Record<Layer, Record<string, string>> = {
  cli: {
    deploy: 'the verb that creates releases from selfdevop.yml (subject: releases)',
    login: 'carries auth (see the exceptions)',
    scale:
      'the verb that sets a service environment’s replicas, stops and starts it (subject: services)',
  },
  dashboard: {
    'hosted-sign-in': "the cloud mode's sign-in pages, the other half of auth",
  },
};

const routeSubjects = names(routesDir);
const layerFiles: Record<Layer, string[]> = {
  cli: names(commandsDir),
  dashboard: names(viewsDir),
};

describe('one name per subject in every layer', () => {
  it('finds the route subjects it checks', () => {
    // A guard against a moved folder making every check below vacuous.
    expect(routeSubjects).toEqual(
      expect.arrayContaining(['projects', 'releases', 'webhooks', 'api-keys', 'audit']),
    );
  });

  it.each(routeSubjects)('%s has a core folder', (subject) => {
    expect(existsSync(join(coreDir, subject)), `core/${subject}/`).toBe(true);
  });

  for (const layer of ['cli', 'dashboard'] as const) {
    it.each(routeSubjects)(
      `%s has a ${layer} file of the same name, or a listed exception`,
      (subject) => {
        const exception = exceptions.find((e) => e.layer === layer && e.subject === subject);
        if (exception) {
          expect(
            layerFiles[layer],
            `${layer}: ${subject} is carried by ${exception.carriedBy}`,
          ).toContain(exception.carriedBy);
          expect(
            layerFiles[layer],
            `${layer} now has ${subject}: remove its exception from this test`,
          ).not.toContain(subject);
        } else {
          expect(layerFiles[layer], `${layer} has no file for the ${subject} route`).toContain(
            subject,
          );
        }
      },
    );

    it(`has no ${layer} file without a route subject, unless listed with a reason`, () => {
      const unexplained = layerFiles[layer].filter(
        (f) => !routeSubjects.includes(f) && !(f in extras[layer]),
      );
      expect(unexplained).toEqual([]);
      const stale = Object.keys(extras[layer]).filter((f) => !layerFiles[layer].includes(f));
      expect(stale, 'listed extras that no longer exist').toEqual([]);
    });
  }

  it('registers every CLI command file under its file name, and nothing else', () => {
    expect(commands.map((c) => c.name).sort()).toEqual(
      // releases.ts also exports the verbs rollback, cancel and logs (of the subject releases).
      [...layerFiles.cli, 'cancel', 'logs', 'rollback'].sort(),
    );
  });

  it('registers every dashboard view file in the dashboard app', () => {
    const app = readFileSync(join(root, 'functions', 'api', 'dashboard', 'app.ts'), 'utf8');
    const views = readFileSync(join(viewsDir, 'auth.ts'), 'utf8');
    for (const view of layerFiles.dashboard) {
      // hosted-sign-in is mounted by the auth view in cloud mode.
      const importer = view === 'hosted-sign-in' ? views : app;
      expect(importer, `${view}.ts is imported`).toContain(
        `'./${view === 'hosted-sign-in' ? '' : 'views/'}${view}.ts'`,
      );
    }
  });
});
