-- Password-spray counting asks how many accounts failed a password from one IP within the
-- window. Ordered by IP, then error code, then time, it seeks to that IP's failures; by IP and
-- time alone it read every sign-in from the IP in the window, successes too, which behind a
-- shared egress IP is thousands of rows for each password sign-in.
DROP INDEX sign_ins_ip_idx;
CREATE INDEX sign_ins_ip_error_idx ON sign_ins (ip_address, error_code, created_at);
