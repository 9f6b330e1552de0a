-- Uploaded models (the bytes live on the volume under AVATAR_STORAGE_DIR, named by id), each
-- with what validation found in it and its avatar-wide animation map (behaviour -> clip).
CREATE TABLE avatars (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    name           text NOT NULL,
    filename       text NOT NULL DEFAULT '',
    size_bytes     bigint NOT NULL,
    sha256         text NOT NULL,
    info           jsonb NOT NULL,
    animation_map  jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX avatars_tenant ON avatars (tenant_id, created_at, id);

-- Which avatar a chatbot shows (no row, or a NULL avatar: the default avatar). Set by the
-- gateway when a tenant picks an avatar for a chatbot.
CREATE TABLE chatbot_avatars (
    chatbot_id  uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    avatar_id   uuid REFERENCES avatars (id),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chatbot_avatars_avatar ON chatbot_avatars (avatar_id);

-- A chatbot's own animation map for one avatar, over the avatar-wide map (only the behaviours
-- it names). Kept per (chatbot, avatar) so switching avatars back and forth keeps it.
CREATE TABLE chatbot_animation_maps (
    chatbot_id     uuid NOT NULL,
    avatar_id      uuid NOT NULL REFERENCES avatars (id) ON DELETE CASCADE,
    tenant_id      uuid NOT NULL,
    animation_map  jsonb NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chatbot_id, avatar_id)
);

ALTER TABLE animation_selections ADD COLUMN avatar_id uuid;
