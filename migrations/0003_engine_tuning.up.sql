-- Every state change rewrites the job row into every index whose predicate it
-- matches (state is indexed, so updates are never HOT). Keep the hot path
-- (available -> running -> succeeded) out of all but the indexes it needs.

-- The per-row foreign-key trigger on job_events costs more than the event
-- insert itself; the pruner deletes a job's events together with the job.
ALTER TABLE job_events DROP CONSTRAINT job_events_job_id_fkey;

-- Listing by state is for the states operators look for; the partial index
-- takes no entries for jobs on the hot path.
DROP INDEX jobs_project_state_list;
CREATE INDEX jobs_project_attention ON jobs (project_id, state, id DESC)
  WHERE state IN ('scheduled', 'retrying', 'dead', 'cancelled');
