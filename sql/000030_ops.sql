-- 000030_ops: what operators and monitoring read. Computed from the tables at the moment they are
-- asked, so every number is true after a restart (the sidecar keeps no counters of its own).



--! functions
-- (sql/functions/000030_ops.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)

grant execute on function hc.metrics(), hc.diagnose() to hcsync_admin, hcsync_viewer;
