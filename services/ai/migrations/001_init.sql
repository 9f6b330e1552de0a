-- The usage and cost ledger: one row per finished reply.
CREATE TABLE replies (
    reply_id           uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL,
    chatbot_id         uuid NOT NULL,
    conversation_id    uuid NOT NULL,
    provider           text NOT NULL,
    model              text NOT NULL,
    prompt_tokens      integer NOT NULL DEFAULT 0,
    completion_tokens  integer NOT NULL DEFAULT 0,
    cost_usd           numeric(12, 6) NOT NULL DEFAULT 0,
    cached             boolean NOT NULL DEFAULT false,
    ttft_ms            real,
    total_ms           real NOT NULL,
    status             text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replies_tenant_day ON replies (tenant_id, chatbot_id, created_at);
