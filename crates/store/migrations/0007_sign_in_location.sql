-- tenantd store: where each sign-in came from, as its own small column.
--
-- Sign-in risk compares a sign-in with the user's recent ones (travel, new country, unfamiliar
-- network): reading that history must not parse every row's whole details document. JSON text
-- (country, city, latitude, longitude, asn); NULL when unknown.
ALTER TABLE sign_ins ADD COLUMN location TEXT;
