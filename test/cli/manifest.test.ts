import { describe, expect, it } from 'vitest';
import { parseManifest, serviceBody } from '../../cli/manifest.ts';

describe('selfdevop.yml', () => {
  it('fills in the defaults and maps a service to POST /api/services', () => {
    const m = parseManifest(`
project: shop
services:
  web:
    image: registry.example.com/shop/web:1.4.2
    port: 8080
    migrate: bin/migrate
    env: { WORKERS: 4, DEBUG: false, NAME: shop }
`);
    expect(m.environment).toBe('production');
    expect(serviceBody('prj_1', 'web', m.services.web!)).toEqual({
      projectId: 'prj_1',
      name: 'web',
      image: 'registry.example.com/shop/web:1.4.2',
      containerPort: 8080,
      healthcheckPath: '/health',
      migrateCommand: 'bin/migrate',
      env: { WORKERS: '4', DEBUG: 'false', NAME: 'shop' },
    });
  });

  it('maps a service built from git, with no image, to POST /api/services', () => {
    const m = parseManifest(`
project: shop
services:
  api:
    git: { url: https://git.example.com/shop/mono.git, subdir: api, buildArgs: { WORKERS: 4 } }
    port: 3000
`);
    expect(serviceBody('prj_1', 'api', m.services.api!)).toEqual({
      projectId: 'prj_1',
      name: 'api',
      git: {
        url: 'https://git.example.com/shop/mono.git',
        subdir: 'api',
        buildArgs: { WORKERS: '4' },
      },
      containerPort: 3000,
      healthcheckPath: '/health',
    });
  });

  it.each([
    [
      'project: shop\nservices:\n  web: { port: 80 }\n',
      /^selfdevop\.yml: services\.web: needs an image or a git source/,
    ],
    [
      'project: shop\nservices:\n  web: { port: 80, git: { url: x, token: t } }\n',
      /^selfdevop\.yml: services\.web\.git: .*token/,
    ],
    ['project: [\n', /^selfdevop\.yml is not valid YAML: /],
    ['services: {}\n', /^selfdevop\.yml: project: /],
    ['project: shop\nservices: {}\n', /^selfdevop\.yml: services: must name at least one service$/],
    ['project: shop\nservices:\n  web: { image: x }\n', /^selfdevop\.yml: services\.web\.port: /],
    [
      'project: shop\nservices:\n  web: { image: x, port: 80, strategy: canary }\n',
      /^selfdevop\.yml: services\.web\.strategy: /,
    ],
    [
      'project: shop\nregion: eu\nservices:\n  web: { image: x, port: 80 }\n',
      /^selfdevop\.yml: region: /,
    ],
  ])('refuses %j naming the field', (text, message) => {
    expect(() => parseManifest(text)).toThrow(message);
  });
});
