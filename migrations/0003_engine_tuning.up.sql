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

-- Events are read per job (job_events_job); a primary-key index on the
-- identity column would only cost an insert per event.
ALTER TABLE job_events DROP CONSTRAINT job_events_pkey;

-- Listing one queue's jobs uses jobs_project_list with a filter; counting a
-- capped queue's running jobs scans the (small) running set through
-- jobs_running_lease. Neither justifies an index write on every claim.
DROP INDEX jobs_project_queue_list;
DROP INDEX jobs_running_per_queue;
