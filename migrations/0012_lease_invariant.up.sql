-- A lease token exists only while the job runs: every statement that moves a job out of
-- `running` clears it in the same update. The statements that act for a lease holder
-- (complete, fail, heartbeat, release) match the token alone and rely on this. With a
-- `state = 'running'` condition as well, the planner may walk the whole `jobs_running_lease`
-- index (every running job) instead of probing the primary key whenever its statistics saw
-- few running jobs, which is the usual case on a table with a long history
-- (test/regression/running-index-scan.test.ts). Adding the check reads the table once.
ALTER TABLE jobs ADD CONSTRAINT jobs_lease_only_running CHECK (lease_token IS NULL OR state = 'running');
