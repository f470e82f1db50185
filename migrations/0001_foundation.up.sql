-- Projects are tenants: every other row belongs to exactly one project.
CREATE TABLE projects (
  id uuid PRIMARY KEY,
  name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- API keys: the secret is never stored, only its SHA-256, found by a public prefix.
-- Platform-admin keys belong to no project; every other key to exactly one.
CREATE TABLE api_keys (
  id uuid PRIMARY KEY,
  project_id uuid REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  role text NOT NULL CHECK (role IN ('platform_admin', 'admin', 'producer', 'worker', 'reviewer', 'viewer')),
  prefix text NOT NULL UNIQUE,
  secret_hash bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  CHECK ((role = 'platform_admin') = (project_id IS NULL))
);
CREATE INDEX api_keys_project ON api_keys (project_id, id DESC);

-- Queues hold jobs and the defaults their jobs inherit. Names are immutable.
CREATE TABLE queues (
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL,
  id uuid NOT NULL UNIQUE,
  paused boolean NOT NULL DEFAULT false,
  max_attempts integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 1000),
  backoff_initial_ms integer NOT NULL CHECK (backoff_initial_ms BETWEEN 0 AND 86400000),
  backoff_factor double precision NOT NULL CHECK (backoff_factor BETWEEN 1 AND 10),
  backoff_max_ms integer NOT NULL CHECK (backoff_max_ms BETWEEN 0 AND 604800000),
  backoff_jitter double precision NOT NULL CHECK (backoff_jitter BETWEEN 0 AND 1),
  timeout_ms integer NOT NULL CHECK (timeout_ms BETWEEN 1000 AND 86400000),
  retention_seconds integer NOT NULL CHECK (retention_seconds BETWEEN 60 AND 31536000),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, name)
);

-- Jobs. priority: 0 critical, 1 high, 2 normal, 3 low (lower runs first).
CREATE TABLE jobs (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL,
  queue text NOT NULL,
  kind text NOT NULL,
  payload jsonb NOT NULL,
  priority smallint NOT NULL CHECK (priority BETWEEN 0 AND 3),
  state text NOT NULL CHECK (state IN ('scheduled', 'available', 'running', 'retrying', 'succeeded', 'dead', 'cancelled')),
  run_at timestamptz NOT NULL,
  attempt integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 1000),
  timeout_ms integer NOT NULL CHECK (timeout_ms BETWEEN 1000 AND 86400000),
  idempotency_key text,
  request_hash bytea,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  FOREIGN KEY (project_id, queue) REFERENCES queues (project_id, name) ON DELETE CASCADE
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (project_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_project_list ON jobs (project_id, id DESC);
CREATE INDEX jobs_project_queue_list ON jobs (project_id, queue, id DESC);
CREATE INDEX jobs_project_state_list ON jobs (project_id, state, id DESC);
