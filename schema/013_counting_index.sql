-- 013_counting_index.sql - the suppression state of an address is
-- evaluated from its bounce rows each time one is recorded; with the
-- columns the rules read in the recipient index, that is an index-only
-- scan of one index page instead of a heap page per earlier bounce, so
-- recording into a large history costs about what it costs into an empty
-- one.  Same key as before (recipient, bounced_at): it serves the same
-- queries.
CREATE INDEX bounces_recipient_cover_idx ON bounces (recipient, bounced_at)
    INCLUDE (recipient_domain, class, reason, action, counts);
DROP INDEX bounces_recipient_idx;
ALTER INDEX bounces_recipient_cover_idx RENAME TO bounces_recipient_idx;
