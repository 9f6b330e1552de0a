-- Every visitor token belongs to a session (one per widget conversation). Tokens are
-- refreshed within the session's absolute lifetime only, and revoking the session stops
-- all of its tokens at once.
CREATE TABLE visitor_sessions (
    conversation_id  uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    chatbot_id       uuid NOT NULL,
    visitor_id       uuid NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);
CREATE INDEX visitor_sessions_started ON visitor_sessions (started_at);

-- A message counts against the monthly quota once, however often its client retries it.
CREATE TABLE counted_messages (
    message_id  uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    month       date NOT NULL
);
CREATE INDEX counted_messages_month ON counted_messages (month);
