DROP TRIGGER queues_delete_jobs ON queues;
DROP FUNCTION queues_delete_jobs();
DROP TRIGGER queues_key_fixed ON queues;
DROP TRIGGER jobs_queue_fixed ON jobs;
DROP FUNCTION jobs_queue_fixed();
DROP TRIGGER jobs_queue_reference ON jobs;
DROP FUNCTION jobs_queue_reference();
ALTER TABLE jobs ADD CONSTRAINT jobs_project_id_queue_fkey
  FOREIGN KEY (project_id, queue) REFERENCES queues (project_id, name) ON DELETE CASCADE;
