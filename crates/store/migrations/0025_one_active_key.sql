-- At most one active signing key per algorithm, so replicas starting together on an empty
-- database cannot each create one (the second insert fails and that replica uses the first's).
-- Keys that an earlier concurrent start doubled are retired first (they stay published and
-- accepted until their tokens expire, like any retired key); the newest stays active.
UPDATE signing_keys SET retired_at = created_at
WHERE retired_at IS NULL AND EXISTS (
    SELECT 1 FROM signing_keys newer
    WHERE newer.alg = signing_keys.alg AND newer.retired_at IS NULL
      AND (newer.created_at > signing_keys.created_at
           OR (newer.created_at = signing_keys.created_at AND newer.kid > signing_keys.kid))
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (alg) WHERE retired_at IS NULL;
