-- The W3C trace context of the job's latest finished attempt (its `Job.attempt` span, or the
-- `traceparent` an external worker reported), written by the same statement that records the
-- attempt's outcome, so the next attempt's span can link to it. NULL before the first attempt
-- and after an attempt that reported none (a lease reclaimed by the reaper).
ALTER TABLE jobs ADD COLUMN last_attempt_traceparent text;
