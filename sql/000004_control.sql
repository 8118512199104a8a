-- 000004_control: the operator's SQL API (pause, resume, recover, reload, poll now, abort, retry,
-- discard, write algorithm, config import/export) and the views operators read.
--
-- Every call validates the state it acts on, writes hc.audit_log and sends NOTIFY hc_control with the
-- connection's schema name. Requests for the sidecar are rows (hc._mappings.requested), never only the
-- notification: a sidecar that was down finds them when it starts. The connection argument
-- (connection_name, a name or schema) may be left out when the database has one connection.



--! functions
-- (sql/functions/000004_control.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)
