-- tenantd store: the `claims` request parameter (OIDC Core §5.5).
--
-- The standard claims an app asked for by name, in the ID token and at userinfo, kept with the
-- grant so the code exchange, every refresh and userinfo release them (JSON, as the protocol
-- crate writes a `ClaimsRequest`; NULL when none were asked for, and for grants made before).
ALTER TABLE grants ADD COLUMN claims TEXT;
