import { describe, expect, it } from 'vitest';
import { planNodeBuild, type NodeBuildInput } from '../../../core/builds/node-plan.ts';

const input = (over: Partial<NodeBuildInput>): NodeBuildInput => ({
  subdir: 'app',
  dockerfile: 'Dockerfile',
  packageJson: JSON.stringify({ scripts: { start: 'node server.js', build: 'node build.js' } }),
  lockfiles: ['package-lock.json'],
  baseImage: 'selfdevop/node-build:24',
  ...over,
});

const refusal = (over: Partial<NodeBuildInput>) => {
  try {
    planNodeBuild(input(over));
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('planned');
};

describe('the zero-config Node.js build', () => {
  it('installs from the lockfile in its own layer, builds when a build script exists, starts with npm start', () => {
    expect(planNodeBuild(input({}))).toEqual({
      dockerfile: [
        '# Written by selfdevop: no app/Dockerfile; app/package.json and package-lock.json found.',
        'FROM selfdevop/node-build:24',
        'WORKDIR /app',
        'COPY package.json package-lock.json ./',
        'RUN npm ci --no-audit --no-fund',
        'COPY . .',
        'RUN npm run build',
        'ENV NODE_ENV=production',
        'CMD ["npm", "start"]',
        '',
      ].join('\n'),
      summary:
        'no app/Dockerfile: zero-config Node.js build on selfdevop/node-build:24 (npm ci from package-lock.json, npm run build, npm start)',
    });
    const plain = planNodeBuild(
      input({
        subdir: '',
        packageJson: '{"scripts":{"start":"node ."}}',
        lockfiles: ['npm-shrinkwrap.json'],
      }),
    );
    expect(plain.dockerfile).not.toContain('npm run build');
    expect(plain.dockerfile).toContain('COPY package.json npm-shrinkwrap.json ./');
  });

  it('names what is missing: a lockfile, a start script, valid JSON, an installer the base image has', () => {
    expect(refusal({ lockfiles: [] })).toMatchObject({
      code: 'zero_config_refused',
      message: expect.stringContaining('no lockfile beside app/package.json'),
    });
    expect(refusal({ packageJson: '{"scripts":{"build":"x"}}' }).message).toContain(
      'app/package.json has no "start" script',
    );
    expect(refusal({ packageJson: '{nope' }).message).toContain(
      'app/package.json is not valid JSON',
    );
    expect(refusal({ lockfiles: ['yarn.lock'] }).message).toContain(
      'app/yarn.lock needs yarn, which the offline base image selfdevop/node-build:24 does not ship',
    );
  });
});
