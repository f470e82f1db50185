-- Worker registry: per-worker outcome counters (updated by the batched complete, fail
-- and reap statements; approved/rejected by review decisions).
ALTER TABLE workers
  ADD COLUMN succeeded_count bigint NOT NULL DEFAULT 0,
  ADD COLUMN failed_count bigint NOT NULL DEFAULT 0,
  ADD COLUMN lease_expired_count bigint NOT NULL DEFAULT 0,
  ADD COLUMN approved_count bigint NOT NULL DEFAULT 0,
  ADD COLUMN rejected_count bigint NOT NULL DEFAULT 0,
  ADD COLUMN version text CHECK (version IS NULL OR char_length(version) BETWEEN 1 AND 200),
  ADD COLUMN labels text[] NOT NULL DEFAULT '{}',
  -- A human worker: the user (JWT principal) the record is bound to. Only that user
  -- may claim through it, and only it receives the jobs assigned to the user.
  ADD COLUMN user_id uuid REFERENCES users (id) ON DELETE CASCADE,
  ADD COLUMN disabled_at timestamptz;

-- Foreman's own engine instances belong to no project: they run every project's jobs.
ALTER TABLE workers ALTER COLUMN project_id DROP NOT NULL;
CREATE UNIQUE INDEX workers_instance_name ON workers (name) WHERE project_id IS NULL;

-- Assignment: at most one target. Unindexed: the claim filters the rows it already
-- walks in jobs_claim order, so no index write is added to the hot path.
ALTER TABLE jobs
  ADD COLUMN assigned_worker_id uuid,
  ADD COLUMN assigned_label text CHECK (assigned_label IS NULL OR char_length(assigned_label) BETWEEN 1 AND 100),
  ADD COLUMN assigned_user_id uuid,
  ADD CONSTRAINT jobs_one_assignee CHECK (num_nonnulls(assigned_worker_id, assigned_label, assigned_user_id) <= 1);
