-- Every authenticated request checks that the login its access token was issued
-- to is still live: that the token's refresh-token family holds a live token.
-- A long login keeps every token it has spent (one per refresh), so the family
-- index would walk all of them to find the one live token; this partial index
-- holds live tokens only, at most one or two per login.
CREATE INDEX refresh_tokens_live_family_idx ON refresh_tokens (family) WHERE state = 'live';
