-- Plan limits per tenant (only the platform admin changes them) and monthly usage.
ALTER TABLE tenants
    ADD COLUMN max_chatbots integer NOT NULL DEFAULT 10,
    ADD COLUMN max_documents integer NOT NULL DEFAULT 500,
    ADD COLUMN monthly_message_quota integer NOT NULL DEFAULT 10000,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE monthly_usage (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    month      date NOT NULL,
    messages   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, month)
);

-- Generic cell rate algorithm: one row per limited key, holding its theoretical arrival time.
-- Shared by every gateway process, so limits hold however many run.
CREATE TABLE rate_limits (
    key  text PRIMARY KEY,
    tat  timestamptz NOT NULL
);

CREATE INDEX api_keys_tenant_created ON api_keys (tenant_id, created_at, id);
