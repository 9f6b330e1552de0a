-- Which behaviour and clip each reply played (the avatar's side of the story, for replays).
CREATE TABLE animation_selections (
    reply_id     uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    chatbot_id   uuid NOT NULL,
    behaviour    text NOT NULL,
    clip         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
