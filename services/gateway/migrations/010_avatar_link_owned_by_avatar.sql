-- Which avatar a chatbot shows is kept by the avatar service alone (its chatbot_avatars,
-- which every assignment already went through). The gateway's copy in the chatbot's config,
-- and the never-used animation_map_id, go.
UPDATE chatbots SET config = config - 'avatar_id' - 'animation_map_id'
WHERE config ? 'avatar_id' OR config ? 'animation_map_id';
