DELETE FROM job_events e USING jobs j WHERE j.id = e.job_id AND j.kind = 'webhook' AND j.queue = '_webhooks';
DELETE FROM jobs WHERE queue = '_webhooks';
DELETE FROM queues WHERE name = '_webhooks';
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_cursors;
DROP TABLE webhook_subscriptions;
