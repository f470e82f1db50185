DROP INDEX job_events_feed;
ALTER TABLE job_events DROP COLUMN xact_id;
ALTER TABLE job_events DROP COLUMN worker_id;
DELETE FROM job_events WHERE job_id IS NULL OR to_state IS NULL OR attempt IS NULL;
ALTER TABLE job_events ALTER COLUMN attempt SET NOT NULL;
ALTER TABLE job_events ALTER COLUMN to_state SET NOT NULL;
ALTER TABLE job_events ALTER COLUMN job_id SET NOT NULL;
