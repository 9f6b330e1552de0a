-- Every durable event, stored once (the primary key makes redeliveries harmless).
CREATE TABLE events (
    event_id        uuid PRIMARY KEY,
    event_type      text NOT NULL,
    tenant_id       uuid NOT NULL,
    correlation_id  text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    payload         jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_tenant_time ON events (tenant_id, occurred_at);
