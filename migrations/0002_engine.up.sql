-- Execution: leases, results, errors, per-job retry overrides, the event log, external workers.
ALTER TABLE queues ADD COLUMN max_running integer CHECK (max_running IS NULL OR max_running BETWEEN 1 AND 100000);

ALTER TABLE jobs
  ADD COLUMN retry_policy jsonb,
  ADD COLUMN lease_token uuid,
  ADD COLUMN lease_expires_at timestamptz,
  ADD COLUMN worker_id uuid,
  ADD COLUMN started_at timestamptz,
  ADD COLUMN progress jsonb,
  ADD COLUMN result jsonb,
  ADD COLUMN last_error jsonb;

-- Claim order: priority, then run_at. Only runnable states are indexed, so
-- finished history does not slow the claim down.
CREATE INDEX jobs_claim ON jobs (priority, run_at, id) WHERE state IN ('available', 'scheduled', 'retrying');
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_running_per_queue ON jobs (project_id, queue) WHERE state = 'running';
CREATE INDEX jobs_finished ON jobs (project_id, queue, finished_at) WHERE finished_at IS NOT NULL;

-- Every transition of every job, in order. Times come from the database clock.
CREATE TABLE job_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  project_id uuid NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  type text NOT NULL,
  from_state text,
  to_state text NOT NULL,
  attempt integer NOT NULL,
  actor text NOT NULL,
  error jsonb,
  data jsonb
);
CREATE INDEX job_events_job ON job_events (job_id, id);

-- External workers, registered per project with the kinds they run.
CREATE TABLE workers (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  kinds text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workers_project ON workers (project_id, id DESC);
