-- 000046_explorer: the dashboard's Sync Explorer reads a mapped table's rows (filtered by their sync
-- state, _hc_lastop, and searched in id, sfid, _hc_err and name) and one row whole, with the fields it
-- maps. The Salesforce side of a row is read by the sidecar on demand (one call per lookup); comparing
-- the two is the page's. Orphaned mappings (Settings) are the ones in SYNC_REMOVED.



--! functions
-- (sql/functions/000046_explorer.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)
