-- Failed sign-ins per account (`account:{email}`, whether or not the account
-- exists) and per client address (`address:{ip}`): after a few, each further
-- attempt must wait twice as long as the last.
CREATE TABLE login_failures (
    key              TEXT PRIMARY KEY,
    failures         INTEGER NOT NULL CHECK (failures > 0),
    last_failure_at  TIMESTAMPTZ NOT NULL
);
