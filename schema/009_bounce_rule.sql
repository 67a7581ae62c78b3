-- 009_bounce_rule.sql - which classification rule decided each bounce's
-- reason and class, so "why was this address suppressed?" has an answer in
-- SQL: the id names a line of bouncerd's rule table (internal/classify_rules.txt,
-- printed by `bounce-parse --rules`) or an operator rule from the
-- configuration ("op:<name>").  NULL for rows recorded before this column.
ALTER TABLE bounces ADD COLUMN IF NOT EXISTS rule text;
COMMENT ON COLUMN bounces.rule IS
    'Id of the classification rule that decided reason and class (see bounce-parse --rules; op:NAME = an operator rule).';
