ALTER TABLE jobs
  DROP CONSTRAINT jobs_one_assignee,
  DROP COLUMN assigned_worker_id,
  DROP COLUMN assigned_label,
  DROP COLUMN assigned_user_id;

DROP INDEX workers_instance_name;
DELETE FROM workers WHERE project_id IS NULL;
ALTER TABLE workers ALTER COLUMN project_id SET NOT NULL;

ALTER TABLE workers
  DROP COLUMN succeeded_count,
  DROP COLUMN failed_count,
  DROP COLUMN lease_expired_count,
  DROP COLUMN approved_count,
  DROP COLUMN rejected_count,
  DROP COLUMN version,
  DROP COLUMN labels,
  DROP COLUMN user_id,
  DROP COLUMN disabled_at;
