-- 000002_connection: the per-connection Heroku Connect objects (reference §2.5–§2.7), created by
-- hc.create_connection(name, schema_name) in the connection's schema (default salesforce).
--
-- Names, types and index names are HC's to the letter, because applications, ORMs (django-heroku-
-- connect), monitoring queries and customer triggers written for HC read them. Everything is created
-- IF NOT EXISTS / OR REPLACE so that an existing Heroku Connect schema is adopted rather than replaced.



--! functions
-- (sql/functions/000002_connection.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)
