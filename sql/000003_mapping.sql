-- 000003_mapping: mappings and their tables. A mapping's config is HC's export format; its table is
-- built from the object's describe exactly as Heroku Connect builds it (reference §2.1–§2.4, §2.7).



--! functions
-- (sql/functions/000003_mapping.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)
