DROP TABLE workers;
DROP TABLE job_events;
DROP INDEX jobs_finished;
DROP INDEX jobs_running_per_queue;
DROP INDEX jobs_running_lease;
DROP INDEX jobs_claim;
ALTER TABLE jobs
  DROP COLUMN retry_policy,
  DROP COLUMN lease_token,
  DROP COLUMN lease_expires_at,
  DROP COLUMN worker_id,
  DROP COLUMN started_at,
  DROP COLUMN progress,
  DROP COLUMN result,
  DROP COLUMN last_error;
ALTER TABLE queues DROP COLUMN max_running;
