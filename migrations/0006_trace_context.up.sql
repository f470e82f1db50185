-- The W3C trace context (`traceparent`) of the request that enqueued the job, so every
-- attempt's span can link back to it. NULL for jobs enqueued outside a trace.
ALTER TABLE jobs ADD COLUMN traceparent text;
