-- Tenant provider keys (encrypted with Fernet; only a hint is ever shown), the reply cache,
-- cancel flags that every replica's streaming loop checks, and more detail in the ledger.
CREATE TABLE provider_keys (
    tenant_id       uuid NOT NULL,
    provider        text NOT NULL,
    key_ciphertext  bytea NOT NULL,
    key_hint        text NOT NULL,
    base_url        text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, provider)
);

CREATE TABLE reply_cache (
    cache_key                text PRIMARY KEY,
    tenant_id                uuid NOT NULL,
    chatbot_id               uuid NOT NULL,
    knowledge_version        integer NOT NULL,
    text                     text NOT NULL,
    citations                jsonb NOT NULL DEFAULT '[]',
    answered_from_knowledge  boolean NOT NULL DEFAULT false,
    provider                 text NOT NULL,
    model                    text NOT NULL,
    hits                     integer NOT NULL DEFAULT 0,
    created_at               timestamptz NOT NULL DEFAULT now(),
    expires_at               timestamptz NOT NULL
);
CREATE INDEX reply_cache_expires ON reply_cache (expires_at);
CREATE INDEX reply_cache_chatbot ON reply_cache (tenant_id, chatbot_id);

CREATE TABLE reply_cancellations (
    reply_id      uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE replies ADD COLUMN error_code text;
ALTER TABLE replies ADD COLUMN fallback_used boolean NOT NULL DEFAULT false;
ALTER TABLE replies ADD COLUMN knowledge_version integer;
CREATE INDEX replies_tenant_created ON replies (tenant_id, created_at);
