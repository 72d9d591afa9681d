/**
 * `node infra-cdk/app.ts`: bundles the functions and synthesizes the stack into
 * infra-cdk/cdk.out (no AWS account needed). Deploy with the CDK CLI from that output.
 */
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { bundleLambdas, repoRoot } from './bundle.ts';
import { fromInfraEnv } from './config.ts';
import { SelfdevopStack } from './stack.ts';

const config = fromInfraEnv();
const code = await bundleLambdas();
const app = new App({ outdir: path.join(repoRoot, 'infra-cdk', 'cdk.out') });
new SelfdevopStack(app, config.stackName, {
  code,
  mailDomain: config.mailDomain,
  edgeDomain: config.edgeDomain,
  caddyAdminUrl: config.caddyAdminUrl,
  alarmEmail: config.alarmEmail,
  edgeIpv4: config.edgeIpv4,
  dnsServers: config.dnsServers,
  edgeTlsAddress: config.edgeTlsAddress,
  gitLayerArn: config.gitLayerArn,
  authDomainPrefix:
    config.authDomainPrefix ??
    app.node.tryGetContext('selfdevop:authDomainPrefix') ??
    'selfdevop-example',
  dashboardUrl: config.dashboardUrl,
  env: { account: config.account, region: config.region },
});
const assembly = app.synth();
process.stdout.write(
  `synthesized ${assembly.stacks.map((s) => s.stackName).join(', ')} into ${assembly.directory}\n`,
);
