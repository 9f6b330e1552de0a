-- The sequence number each accepted message was given. A retry of the same message (same
-- client message id, after a failed publish or a lost 202) gets its first number again
-- instead of a new one: a burnt number would be a gap the conversation service waits out.
CREATE TABLE message_seqs (
    message_id       uuid PRIMARY KEY,
    conversation_id  uuid NOT NULL,
    seq              bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_seqs_created ON message_seqs (created_at);
