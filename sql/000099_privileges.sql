-- 000099_privileges: which functions each role may call. It runs after every file that creates
-- functions, so the lists below are complete; test/sql/roles.test.ts holds the same lists, and a new
-- function stays the owner's (the sync process's) alone until it is classified in both.
--
-- PostgreSQL lets PUBLIC execute every new function: that is taken back for everything in hc and in the
-- connection schemas. The per-connection functions made later (HC's capture, re-queue and notify
-- functions) are revoked where they are made (hc._install_connection_objects, hc.apply_mapping_ddl).

revoke execute on all functions in schema hc from public;
do $$
declare
  s text;
begin
  for s in select schema_name from hc.connections loop
    execute format('revoke execute on all functions in schema %I from public', s);
  end loop;
end;
$$;

-- The operator: the control API.
grant execute on function
  hc.create_connection(text, text),
  hc.delete_connection(text, text),
  hc.create_mapping(text, jsonb, jsonb, text),
  hc.update_mapping(text, jsonb, jsonb, text),
  hc.delete_mapping(text, text, boolean),
  hc.import_config(jsonb, text),
  hc.import_config(text, text),
  hc.pause(text),
  hc.resume(text),
  hc.recover(text),
  hc.reload(text, text),
  hc.poll_now(text, text),
  hc.abort(text, text),
  hc.retry(integer[], text, text),
  hc.discard(integer[], text, text),
  hc.set_write_algorithm(text, text),
  hc.set_api_budget(text, integer, integer, integer, boolean),
  hc.grant_app_access(text, text),
  hc.revoke_app_access(text, text),
  hc.resolve_conflict(bigint, jsonb),
  hc.resolve_conflict(bigint, text),
  hc.uninstall_script()
to hcsync_admin;

-- The operator and the viewer: reads (hc.mappings, hc.write_errors and hc.status call _mapping_counts,
-- _failed_writes and _unmapped_writes; the CLI resolves names with _connection and _mapping, and reads
-- connections, mappings, the sync log, conflicts and the governor's waits with _connections, _mapping_rows,
-- _sync_log, _sync_log_last_id, _conflicts_of and _api_budget_waits, invoker's rights).
grant execute on function
  hc._connection(text),
  hc._mapping(text, text),
  hc._connections(text, text, integer),
  hc._mapping_rows(integer, integer),
  hc._sync_log(integer, integer, text, integer, text, text[], text, text, bigint, bigint),
  hc._sync_log_last_id(),
  hc._conflicts_of(integer, text, text, boolean, bigint),
  hc._api_budget_waits(text),
  hc.diagnose(),
  hc.metrics(),
  hc.api_budget_metrics(),
  hc.export_config(text),
  hc._mapping_counts(integer),
  hc._failed_writes(hc.connections),
  hc._unmapped_writes(hc.connections),
  hc.notifications_list(integer, text)
to hcsync_admin, hcsync_viewer;

-- Heroku Connect's loop-prevention flag: every session's trigger WHEN clauses call it.
grant execute on function public.get_xmlbinary() to public;
