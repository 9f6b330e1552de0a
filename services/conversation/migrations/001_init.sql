CREATE TABLE visitors (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    chatbot_id    uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE conversations (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL,
    chatbot_id          uuid NOT NULL,
    visitor_id          uuid NOT NULL REFERENCES visitors (id),
    next_seq            integer NOT NULL DEFAULT 1,
    handoff_requested   boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_chatbot ON conversations (tenant_id, chatbot_id, created_at);

-- Visitor messages and replies, in one sequence per conversation. A reply row is created
-- 'pending' with the visitor's message, then completed or failed by the ai service's events.
CREATE TABLE messages (
    id                 uuid PRIMARY KEY,
    conversation_id    uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    tenant_id          uuid NOT NULL,
    seq                integer NOT NULL,
    role               text NOT NULL CHECK (role IN ('visitor', 'assistant')),
    status             text NOT NULL CHECK (status IN ('received', 'pending', 'completed', 'failed')),
    text               text NOT NULL DEFAULT '',
    client_message_id  text,
    reply_to           uuid,
    citations          jsonb,
    intent             text,
    sentiment          real,
    usage              jsonb,
    timings            jsonb,
    animation          jsonb,
    error_code         text,
    error_message      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz,
    UNIQUE (conversation_id, seq)
);
CREATE INDEX messages_pending ON messages (created_at) WHERE status = 'pending';
