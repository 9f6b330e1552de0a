-- A follow-up's standalone search query, written by the chatbot's LLM once per conversation
-- turn: a redelivered or retried reply reuses it instead of paying for another call.
CREATE TABLE query_rewrites (
    rewrite_key  text PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    query        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX query_rewrites_created ON query_rewrites (created_at);
