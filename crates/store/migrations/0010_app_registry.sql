-- tenantd store: apps registered while the tenant runs (admin API, dynamic registration).
--
-- `source`: 'config' (the tenant's config file, written again at every start), 'api'
-- (`/v1.0/applications`) or 'dynamic' (RFC 7591 registration). Only 'config' rows are replaced
-- or removed at start-up; the others live until deleted.
-- `secrets`: JSON list of the app's client secrets, each a SHA-256 digest with its metadata
-- (Graph's passwordCredential: key id, display name, hint, validity); never the secret itself.
-- `registration_token_hash`: digest of the RFC 7592 registration access token (dynamic apps).
ALTER TABLE apps ADD COLUMN source TEXT NOT NULL DEFAULT 'config';
ALTER TABLE apps ADD COLUMN secrets TEXT NOT NULL DEFAULT '[]';
ALTER TABLE apps ADD COLUMN registration_token_hash TEXT;
