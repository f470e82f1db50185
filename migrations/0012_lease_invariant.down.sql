ALTER TABLE jobs DROP CONSTRAINT jobs_lease_only_running;
