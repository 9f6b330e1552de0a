-- A visitor's rating of a reply. The latest rating wins: rated_at is the rating event's own
-- time, so a redelivered or out-of-order older rating never overwrites a newer one.
ALTER TABLE messages ADD COLUMN rating text CHECK (rating IN ('up', 'down'));
ALTER TABLE messages ADD COLUMN rating_comment text;
ALTER TABLE messages ADD COLUMN rated_at timestamptz;
