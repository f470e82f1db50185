-- Signed webhooks. A subscription's signing secret is stored encrypted (AES-256-GCM
-- under a key derived from the password pepper), never in the clear.
CREATE TABLE webhook_subscriptions (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  url text NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2048),
  -- Empty: every event type.
  event_types text[] NOT NULL DEFAULT '{}',
  enabled boolean NOT NULL DEFAULT true,
  disabled_reason text,
  secret_ciphertext text NOT NULL,
  -- After a rotation the previous secret also signs until it expires, so receivers can roll over.
  previous_secret_ciphertext text,
  previous_secret_expires_at timestamptz,
  -- Feed position at creation: older events are never delivered to this subscription.
  start_xact_id xid8 NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_project ON webhook_subscriptions (project_id, id DESC);

-- The dispatcher's durable position in each project's feed, in (xact_id, id) order. It is
-- advanced in the transaction that enqueues the delivery jobs, under a row lock.
CREATE TABLE webhook_cursors (
  project_id uuid PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
  xact_id xid8 NOT NULL,
  event_id bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One delivery per (event, subscription); its id is also the id of the job that delivers it.
CREATE TABLE webhook_deliveries (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL,
  subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
  event_id bigint NOT NULL,
  event_type text NOT NULL,
  -- The request body, fixed at dispatch so every attempt sends the same bytes.
  body jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, id DESC);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempt integer NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  status_code integer,
  latency_ms integer NOT NULL,
  succeeded boolean NOT NULL,
  error text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
