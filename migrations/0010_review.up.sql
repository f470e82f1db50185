-- Human review. A queue's review settings are the defaults its jobs inherit; a job may
-- override them at enqueue, and the resolved settings are stored on the job, so the
-- batched complete statement decides between `succeeded` and `awaiting_review` from
-- the job row alone (no per-job lookup on the hot path).
ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check CHECK (state IN (
  'scheduled', 'available', 'running', 'retrying', 'succeeded', 'dead', 'cancelled', 'awaiting_review', 'rejected'));

ALTER TABLE queues
  ADD COLUMN review_required boolean NOT NULL DEFAULT false,
  ADD COLUMN review_deadline_ms integer CHECK (review_deadline_ms BETWEEN 1000 AND 604800000),
  ADD COLUMN review_on_deadline text NOT NULL DEFAULT 'escalate'
    CHECK (review_on_deadline IN ('approve', 'reject', 'escalate'));

ALTER TABLE jobs
  ADD COLUMN review_required boolean NOT NULL DEFAULT false,
  ADD COLUMN review_deadline_ms integer CHECK (review_deadline_ms BETWEEN 1000 AND 604800000),
  ADD COLUMN review_on_deadline text NOT NULL DEFAULT 'escalate'
    CHECK (review_on_deadline IN ('approve', 'reject', 'escalate')),
  -- Set when an attempt's result is submitted for review.
  ADD COLUMN review_requested_at timestamptz,
  ADD COLUMN review_due_at timestamptz,
  -- Escalation happens once: the sweep skips escalated jobs.
  ADD COLUMN review_escalated_at timestamptz,
  -- The latest rejection with retry, handed to the next attempts.
  ADD COLUMN review_feedback jsonb;

-- The review queue of a project, oldest first. Only jobs awaiting review are indexed.
CREATE INDEX jobs_awaiting_review ON jobs (project_id, id) WHERE state = 'awaiting_review';
-- The deadline sweep: jobs awaiting review with a deadline not yet acted on.
CREATE INDEX jobs_review_due ON jobs (review_due_at)
  WHERE state = 'awaiting_review' AND review_due_at IS NOT NULL AND review_escalated_at IS NULL;
