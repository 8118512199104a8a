-- 000005_roles: who may do what. Four kinds of role, each with no more than its work needs:
--
--   the sync process: the owner, the role that runs `hcsync migrate` and `hcsync run`. It owns every
--     object hcsync creates and alone may call the functions the sync reports through
--     (hc.set_mapping_state, hc.set_connection_state, hc.bind_org, hc.take_request, hc.apply_mapping_ddl,
--     hc.inbound_*, hc.outbound_*) and HC's re-queue functions. It should not be a superuser.
--   hcsync_admin, the operator: calls the control API (hc.pause(), hc.create_mapping(), hc.retry(), …),
--     reads hc.*, the trigger logs and the mapped tables. It cannot write hc.* tables directly: every
--     change goes through a function that validates it and writes the audit trail.
--   hcsync_viewer: reads what the operator reads (hc.status, hc.mappings, hc.write_errors, the logs,
--     hc.diagnose(), hc.metrics(), hc.export_config()) and changes nothing.
--   application roles (hc.grant_app_access): SELECT/INSERT/UPDATE/DELETE on a connection's mapped
--     tables, SELECT on its trigger logs (to see failed writes). No function in hc, no writes to
--     _trigger_log, nothing in other connections' schemas. Their changes are still captured: the
--     logger trigger functions are SECURITY DEFINER and resolve nothing another role can replace.
--
-- Any session may SET xmlbinary = hex and then write mapped tables without being captured (and mark
-- rows SYNCED): that is Heroku Connect's own contract (the sync's sessions do it), not a privilege.
-- The functions each role may call are granted in 000099_privileges.sql, after every file that makes one.
--
-- Grant the roles to people/services:  GRANT hcsync_admin TO alice;  GRANT hcsync_viewer TO grafana;

-- Later migrations (inbound, outbound, ops) add tables: both roles read those too, without each file
-- repeating the grants.
alter default privileges in schema hc grant select on tables to hcsync_admin, hcsync_viewer;

--! functions
-- (sql/functions/000005_roles.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)

revoke all on schema hc from public;

revoke all on all tables in schema hc from public;

revoke all on all sequences in schema hc from public;

-- Functions are executable by PUBLIC by default; 000099_privileges.sql takes that back for every one.
revoke execute on all functions in schema hc from public;

grant usage on schema hc to hcsync_admin, hcsync_viewer;

grant select on all tables in schema hc to hcsync_admin, hcsync_viewer;

revoke execute on function hc.grant_app_access(text, text), hc.revoke_app_access(text, text) from public;

grant execute on function hc.grant_app_access(text, text), hc.revoke_app_access(text, text) to hcsync_admin;
