-- job_events becomes the durable per-project event feed: job lifecycle, review and
-- worker events. Worker events have no job; review and worker events may have no
-- state or attempt.
ALTER TABLE job_events ALTER COLUMN job_id DROP NOT NULL;
ALTER TABLE job_events ALTER COLUMN to_state DROP NOT NULL;
ALTER TABLE job_events ALTER COLUMN attempt DROP NOT NULL;
ALTER TABLE job_events ADD COLUMN worker_id uuid;

-- Feed order is (xact_id, id), not id alone: identity values are handed out before
-- commit, so a reader paging by id could pass an event whose transaction commits
-- later. A reader only returns events with xact_id below the oldest transaction
-- still running (pg_snapshot_xmin), so every future event sorts after its cursor.
ALTER TABLE job_events ADD COLUMN xact_id xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX job_events_feed ON job_events (project_id, xact_id, id);
