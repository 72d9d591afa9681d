-- Moving a shared database to a dedicated server (issue 15): the shared data service records
-- the move (status, the new data service, the step that failed) so a second move is refused
-- while one runs and `confirm-move` knows what it drops. Null: never asked.
alter table data_services add column if not exists move jsonb;
