CREATE INDEX jobs_running_per_queue ON jobs (project_id, queue) WHERE state = 'running';
CREATE INDEX jobs_project_queue_list ON jobs (project_id, queue, id DESC);
ALTER TABLE job_events ADD CONSTRAINT job_events_pkey PRIMARY KEY (id);
DROP INDEX jobs_project_attention;
CREATE INDEX jobs_project_state_list ON jobs (project_id, state, id DESC);
DELETE FROM job_events e WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.job_id);
ALTER TABLE job_events ADD CONSTRAINT job_events_job_id_fkey FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE;
