DROP INDEX jobs_review_due;
DROP INDEX jobs_awaiting_review;
-- Jobs in the review states take the closest state the older schema knows.
UPDATE jobs SET state = 'succeeded', finished_at = coalesce(finished_at, now()) WHERE state = 'awaiting_review';
UPDATE jobs SET state = 'dead' WHERE state = 'rejected';
ALTER TABLE jobs
  DROP COLUMN review_feedback,
  DROP COLUMN review_escalated_at,
  DROP COLUMN review_due_at,
  DROP COLUMN review_requested_at,
  DROP COLUMN review_on_deadline,
  DROP COLUMN review_deadline_ms,
  DROP COLUMN review_required;
ALTER TABLE queues
  DROP COLUMN review_on_deadline,
  DROP COLUMN review_deadline_ms,
  DROP COLUMN review_required;
ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check CHECK (state IN (
  'scheduled', 'available', 'running', 'retrying', 'succeeded', 'dead', 'cancelled'));
