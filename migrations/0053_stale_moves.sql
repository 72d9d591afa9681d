-- Moves whose worker died (issue 15): a move is sent once, never redelivered, so one whose
-- worker stopped would stay `moving` until someone asked for a new one. The workers'
-- `backup-sweep` job fails such moves; it finds them before any org is known, so it reads them
-- through a narrow SECURITY DEFINER function like selfdevop_stuck_backups (0037). A move is
-- stale when its heartbeat (`move.heartbeatAt`, written every minute by its worker) is older
-- than p_beat_before, or when it has none and was asked (`move.at`) before p_start_before
-- (still queued, or dead before its first beat). Ids only; the sweep re-reads each row in its
-- org and fails it by compare-and-set on the move, so a live worker wins.
create or replace function selfdevop_stale_moves(
  p_beat_before timestamptz,
  p_start_before timestamptz,
  p_limit integer
)
returns table (org_id text, data_service_id text)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select d.org_id, d.id
  from public.data_services d
  where d.move->>'status' = 'moving'
    and case
      when d.move->>'heartbeatAt' is not null then (d.move->>'heartbeatAt')::timestamptz < p_beat_before
      else (d.move->>'at')::timestamptz < p_start_before
    end
  order by 1, 2
  limit least(greatest(p_limit, 0), 1000)
$$;

revoke all on function selfdevop_stale_moves(timestamptz, timestamptz, integer) from public;
grant execute on function selfdevop_stale_moves(timestamptz, timestamptz, integer) to selfdevop_app;
