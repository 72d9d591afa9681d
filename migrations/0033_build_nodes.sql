-- Builds on nodes (issue 13). Pruning: the workers' hourly `build-prune` job visits every node a
-- release built from git ran on, before any org is known, so it reads them through a narrow
-- SECURITY DEFINER function like the other cross-org lookups. It answers ids only; the job
-- then reads each node (and its sealed credentials) inside that node's org.

create or replace function selfdevop_build_nodes(p_limit integer)
returns table (org_id text, node_id text)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select distinct r.org_id, x.node_id
  from public.releases r
  cross join lateral (
    select r.node_id
    union
    select e->>'nodeId'
    from jsonb_array_elements(coalesce(r.replica_set->'replicas', '[]'::jsonb)) e
  ) x(node_id)
  where r.git_sha is not null and x.node_id is not null
  order by 1, 2
  limit least(greatest(p_limit, 0), 5000)
$$;

revoke all on function selfdevop_build_nodes(integer) from public;
grant execute on function selfdevop_build_nodes(integer) to selfdevop_app;

-- Per-engine build slots (issue 13: "at most N builds per node at once, queued fairly").
-- One queue per engine (a node's docker_host: the same engine registered by several orgs is
-- one machine), shared by orgs, so it lives outside any org: no org_id column, no grant to
-- the app roles, reached only through the two SECURITY DEFINER functions below.
create table if not exists build_slots (
  release_id text primary key,
  owner_org text not null,
  engine text not null,
  queued_at timestamptz not null default now(),
  -- Null while waiting; a running build holds its slot until freed or its lease ends
  -- (a worker that died mid-build).
  started_at timestamptz,
  lease_until timestamptz
);
create index if not exists build_slots_engine_idx on build_slots (engine, started_at);

-- When each org last got a slot on an engine: the fair order's round robin.
create table if not exists build_turns (
  engine text not null,
  owner_org text not null,
  last_started_at timestamptz not null,
  primary key (engine, owner_org)
);

revoke all on build_slots, build_turns from public;
grant select, insert, update, delete on build_slots, build_turns to selfdevop_definer;

-- Takes a slot of p_engine for release p_release, or queues it. Granted when fewer than
-- p_limit builds run there and it is first in the fair order: the org with the fewest builds
-- running on the engine, then the one served longest ago, then the oldest ticket. Answers
-- the running builds (release and org) and how many wait ahead when not granted.
create or replace function selfdevop_build_slot_take(
  p_release text, p_org text, p_engine text, p_limit integer, p_lease_seconds integer)
returns table (granted boolean, running_release text, running_org text, ahead integer)
language plpgsql volatile security definer
set search_path = public, pg_temp
as $$
declare
  v_running integer;
  v_first text;
begin
  perform pg_advisory_xact_lock(hashtextextended('selfdevop.build_slots:' || p_engine, 0));
  -- Leases that ran out (a dead worker) and tickets of releases no longer building
  -- (cancelled, failed) free their place.
  delete from build_slots s
  where s.engine = p_engine
    and ((s.started_at is not null and s.lease_until < now())
      or not exists (select 1 from releases r
                     where r.org_id = s.owner_org and r.id = s.release_id
                       and r.status in ('queued', 'building')));
  insert into build_slots (release_id, owner_org, engine)
  values (p_release, p_org, p_engine)
  on conflict (release_id) do nothing;
  if exists (select 1 from build_slots where release_id = p_release and started_at is not null) then
    update build_slots set lease_until = now() + make_interval(secs => p_lease_seconds)
    where release_id = p_release;
    return query select true, null::text, null::text, 0;
    return;
  end if;
  select count(*) into v_running from build_slots where engine = p_engine and started_at is not null;
  select w.release_id into v_first
  from build_slots w
  left join build_turns t on t.engine = w.engine and t.owner_org = w.owner_org
  where w.engine = p_engine and w.started_at is null
  order by (select count(*) from build_slots x
            where x.engine = w.engine and x.owner_org = w.owner_org and x.started_at is not null),
           t.last_started_at nulls first, w.queued_at, w.release_id
  limit 1;
  if v_running < greatest(p_limit, 1) and v_first = p_release then
    update build_slots set started_at = now(), lease_until = now() + make_interval(secs => p_lease_seconds)
    where release_id = p_release;
    insert into build_turns (engine, owner_org, last_started_at) values (p_engine, p_org, now())
    on conflict (engine, owner_org) do update set last_started_at = excluded.last_started_at;
    return query select true, null::text, null::text, 0;
    return;
  end if;
  return query
    select false, s.release_id, s.owner_org,
      (select count(*)::integer from build_slots w2
       where w2.engine = p_engine and w2.started_at is null and w2.release_id <> p_release
         and w2.queued_at <= (select queued_at from build_slots where release_id = p_release))
    from build_slots s where s.engine = p_engine and s.started_at is not null
    union all
    -- Nothing runs (the fair order picked another waiter): still say how many are ahead.
    select false, null, null,
      (select count(*)::integer from build_slots w3
       where w3.engine = p_engine and w3.started_at is null and w3.release_id <> p_release
         and w3.queued_at <= (select queued_at from build_slots where release_id = p_release))
    where not exists (select 1 from build_slots s2 where s2.engine = p_engine and s2.started_at is not null);
end
$$;

-- Frees the slot (or the waiting ticket) of a release: its build ended or it was cancelled.
create or replace function selfdevop_build_slot_free(p_release text, p_org text)
returns void
language sql volatile security definer
set search_path = public, pg_temp
as $$
  delete from build_slots where release_id = p_release and owner_org = p_org
$$;

revoke all on function selfdevop_build_slot_take(text, text, text, integer, integer) from public;
grant execute on function selfdevop_build_slot_take(text, text, text, integer, integer) to selfdevop_app;
revoke all on function selfdevop_build_slot_free(text, text) from public;
grant execute on function selfdevop_build_slot_free(text, text) to selfdevop_app;
