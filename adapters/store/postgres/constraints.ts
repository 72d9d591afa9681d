/** Constraint violations stated as the core's errors, and the savepoint that keeps them recoverable. */
import { AlreadyExists, HostnameTaken, NotFound } from '../../../core/errors.ts';
import { isPgError, type PgErrorLike, type SqlClient } from '../../db/postgres.ts';

/** Which record a constraint protects, to state the conflict as the user knows it. */
const uniqueConstraints: Record<string, [what: string, key: string]> = {
  orgs_pkey: ['org', 'id'],
  users_pkey: ['user', 'id'],
  users_email_key: ['user', 'email'],
  memberships_pkey: ['membership', 'userId'],
  api_keys_pkey: ['api_key', 'id'],
  api_keys_org_id_key: ['api_key', 'id'],
  api_keys_org_name_key: ['api_key', 'name'],
  api_keys_key_hash_key: ['api_key', 'prefix'],
  projects_pkey: ['project', 'id'],
  projects_org_name_key: ['project', 'name'],
  environments_pkey: ['environment', 'id'],
  environments_project_name_key: ['environment', 'name'],
  services_pkey: ['service', 'id'],
  services_project_name_key: ['service', 'name'],
  nodes_pkey: ['node', 'id'],
  nodes_org_name_key: ['node', 'name'],
  releases_pkey: ['release', 'id'],
  deploy_jobs_pkey: ['deploy_job', 'id'],
  domains_pkey: ['domain', 'id'],
  domains_org_hostname_key: ['domain', 'hostname'],
  secrets_pkey: ['secret', 'id'],
  secrets_service_env_name_key: ['secret', 'name'],
  webhooks_pkey: ['webhook', 'id'],
  registries_pkey: ['registry', 'id'],
  registries_org_id_key: ['registry', 'id'],
  registries_org_server_key: ['registry', 'server'],
  webhook_deliveries_pkey: ['webhook_delivery', 'id'],
  audit_events_pkey: ['audit_event', 'id'],
  data_services_pkey: ['data_service', 'id'],
  data_services_project_name_key: ['data_service', 'name'],
  data_service_links_pkey: ['data_service_link', 'id'],
  data_service_links_pair_key: ['data_service_link', 'serviceId'],
  data_service_links_env_key: ['data_service_link', 'envName'],
  jobs_pkey: ['job', 'id'],
  jobs_name_key: ['job', 'name'],
  job_runs_pkey: ['job_run', 'id'],
  invites_pkey: ['invite', 'id'],
  invites_token_hash_key: ['invite', 'id'],
};

/** Which parent a foreign key points at, to state a missing one as NotFound. */
const foreignKeys: Record<string, [what: string, key: string]> = {
  memberships_user_id_fkey: ['user', 'userId'],
  invites_accepted_by_fkey: ['user', 'acceptedBy'],
  environments_project_fkey: ['project', 'projectId'],
  services_project_fkey: ['project', 'projectId'],
  releases_service_fkey: ['service', 'serviceId'],
  releases_environment_fkey: ['environment', 'environmentId'],
  releases_previous_fkey: ['release', 'previousReleaseId'],
  releases_node_fkey: ['node', 'nodeId'],
  release_steps_release_fkey: ['release', 'releaseId'],
  release_logs_release_fkey: ['release', 'releaseId'],
  deploy_jobs_release_fkey: ['release', 'releaseId'],
  domains_service_fkey: ['service', 'serviceId'],
  domains_environment_fkey: ['environment', 'environmentId'],
  secrets_service_fkey: ['service', 'serviceId'],
  secrets_environment_fkey: ['environment', 'environmentId'],
  webhook_deliveries_webhook_fkey: ['webhook', 'webhookId'],
  data_services_project_fkey: ['project', 'projectId'],
  data_services_node_fkey: ['node', 'nodeId'],
  data_services_shared_server_fkey: ['data_service', 'sharedServerId'],
  data_service_links_data_service_fkey: ['data_service', 'dataServiceId'],
  data_service_links_service_fkey: ['service', 'serviceId'],
  jobs_service_fkey: ['service', 'serviceId'],
  jobs_environment_fkey: ['environment', 'environmentId'],
  job_runs_job_fkey: ['job', 'jobId'],
};

/** Unique constraints whose clash is a fact of its own, not a duplicate record. */
const uniqueErrors: Record<string, (record: Record<string, unknown>) => Error> = {
  // Migration 0007: only a verified domain holds its hostname, across orgs.
  domains_hostname_held_key: (record) => new HostnameTaken(String(record.hostname ?? '')),
};

/** The core error for a constraint violation on `record`, or null when it is not one. */
export function violationOf(e: PgErrorLike, record: Record<string, unknown>): Error | null {
  const constraint = e.constraint ?? '';
  if (e.code === '23505') {
    const special = uniqueErrors[constraint];
    if (special) return special(record);
    const u = uniqueConstraints[constraint];
    if (u) return new AlreadyExists(u[0], String(record[u[1]] ?? ''));
  }
  if (e.code === '23503') {
    if (constraint.endsWith('_org_id_fkey')) return new NotFound('org', String(record.orgId ?? ''));
    const f = foreignKeys[constraint];
    if (f) return new NotFound(f[0], String(record[f[1]] ?? ''));
  }
  return null;
}

export const isViolation = (e: unknown): e is PgErrorLike =>
  isPgError(e) && (e.code === '23505' || e.code === '23503');

/**
 * Runs one write inside a savepoint, so a constraint violation becomes a core error and
 * leaves the transaction usable (as it is in the memory store).
 */
export async function guardedWrite(
  tx: SqlClient,
  text: string,
  values: readonly unknown[],
  record: Record<string, unknown>,
  onViolation?: (e: PgErrorLike) => Promise<Error | null>,
): Promise<number> {
  await tx.query('savepoint store_write');
  try {
    const r = await tx.query(text, values);
    await tx.query('release savepoint store_write');
    return r.rowCount;
  } catch (e) {
    if (!isViolation(e)) throw e;
    await tx.query('rollback to savepoint store_write');
    await tx.query('release savepoint store_write');
    throw (await onViolation?.(e)) ?? violationOf(e, record) ?? e;
  }
}
