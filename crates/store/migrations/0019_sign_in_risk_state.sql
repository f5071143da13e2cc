-- A risky sign-in's riskState and riskDetail, kept beside its details so that remediating the
-- user closes it (atRisk becomes remediated, dismissed or confirmedSafe, as Entra shows it), and
-- a sign-in an admin confirmed safe teaches sign-in risk what is familiar. NULL: as the details
-- say (rows written before this column, and sign-ins that were not risky).
ALTER TABLE sign_ins ADD COLUMN risk_state TEXT;
ALTER TABLE sign_ins ADD COLUMN risk_detail TEXT;
