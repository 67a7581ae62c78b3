-- 005_trigger_generic_plans.sql - the NOTIFY trigger's queries look up
-- one address each through its index, so a generic plan (made once per
-- session) is right for them.  Left to the default, PostgreSQL may keep
-- re-planning them on every row (milliseconds each: the counting rules
-- are a large query), which made recording five times slower on a table
-- that started empty.
ALTER FUNCTION bounces_notify_suppression()
    SET plan_cache_mode = force_generic_plan;
