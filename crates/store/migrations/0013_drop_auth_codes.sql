-- tenantd store: stored authorization codes are gone.
--
-- Codes are sealed since 0012: issuing one writes nothing and redeeming it inserts its grant, so
-- nothing reads or writes `auth_codes` any more (the server has not redeemed a stored code
-- since). Its indexes are dropped with it, on SQLite and PostgreSQL alike.
DROP TABLE IF EXISTS auth_codes;
