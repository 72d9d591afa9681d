/**
 * What `node infra-cdk/app.ts` reads from the environment, in one place; the stack itself
 * takes plain props. Placeholders let `synth` run without an account.
 */
export interface InfraConfig {
  stackName: string;
  mailDomain: string;
  edgeDomain: string;
  caddyAdminUrl: string;
  alarmEmail?: string;
  edgeIpv4?: string[];
  dnsServers?: string[];
  edgeTlsAddress?: string;
  /** Falls back to the `selfdevop:authDomainPrefix` context value, then a placeholder. */
  authDomainPrefix?: string;
  dashboardUrl?: string;
  /** A Lambda layer with git at /opt/bin for the worker (builds from git). */
  gitLayerArn?: string;
  account?: string;
  region?: string;
}

const list = (v: string | undefined) => v?.split(',').filter(Boolean);

export function fromInfraEnv(env: Record<string, string | undefined> = process.env): InfraConfig {
  return {
    stackName: env.STACK_NAME ?? 'Selfdevop',
    mailDomain: env.MAIL_DOMAIN ?? 'example.com',
    edgeDomain: env.EDGE_DOMAIN ?? 'apps.example.com',
    caddyAdminUrl: env.CADDY_ADMIN_URL ?? 'http://10.0.0.10:2019',
    alarmEmail: env.ALARM_EMAIL,
    edgeIpv4: list(env.EDGE_IPV4),
    dnsServers: list(env.DNS_SERVERS),
    edgeTlsAddress: env.EDGE_TLS_ADDRESS,
    authDomainPrefix: env.AUTH_DOMAIN_PREFIX,
    dashboardUrl: env.DASHBOARD_URL,
    gitLayerArn: env.GIT_LAYER_ARN,
    account: env.CDK_DEFAULT_ACCOUNT,
    region: env.CDK_DEFAULT_REGION,
  };
}
