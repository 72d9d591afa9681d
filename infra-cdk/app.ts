/**
 * `node infra-cdk/app.ts`: bundles the functions and synthesizes the stack into
 * infra-cdk/cdk.out (no AWS account needed). Deploy with the CDK CLI from that output.
 */
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { bundleLambdas, repoRoot } from './bundle.ts';
import { SelfdevopStack } from './stack.ts';

const code = await bundleLambdas();
const app = new App({ outdir: path.join(repoRoot, 'infra-cdk', 'cdk.out') });
new SelfdevopStack(app, process.env.STACK_NAME ?? 'Selfdevop', {
  code,
  mailDomain: process.env.MAIL_DOMAIN ?? 'example.com',
  edgeDomain: process.env.EDGE_DOMAIN ?? 'apps.example.com',
  caddyAdminUrl: process.env.CADDY_ADMIN_URL ?? 'http://10.0.0.10:2019',
  alarmEmail: process.env.ALARM_EMAIL,
  edgeIpv4: process.env.EDGE_IPV4?.split(',').filter(Boolean),
  dnsServers: process.env.DNS_SERVERS?.split(',').filter(Boolean),
  edgeTlsAddress: process.env.EDGE_TLS_ADDRESS,
  authDomainPrefix: process.env.AUTH_DOMAIN_PREFIX ?? app.node.tryGetContext('selfdevop:authDomainPrefix') ?? 'selfdevop-example',
  dashboardUrl: process.env.DASHBOARD_URL,
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
const assembly = app.synth();
process.stdout.write(`synthesized ${assembly.stacks.map((s) => s.stackName).join(', ')} into ${assembly.directory}\n`);
