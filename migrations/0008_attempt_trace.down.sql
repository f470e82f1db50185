ALTER TABLE jobs DROP COLUMN last_attempt_traceparent;
