-- RIGD TradeBot bot ledger schema (generated from ledger_schema.py; kept equal by a test)

CREATE TABLE ledger_meta (
	"key" TEXT NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);

CREATE TABLE transactions (
	id INTEGER NOT NULL, 
	fitid TEXT NOT NULL, 
	trntype TEXT NOT NULL, 
	dtposted TEXT NOT NULL, 
	strategy TEXT, 
	ticker TEXT, 
	signal_ticker TEXT, 
	side TEXT, 
	direction TEXT, 
	size TEXT, 
	entry_price INTEGER, 
	exit_price INTEGER, 
	pnl INTEGER, 
	broker TEXT, 
	client_order_id TEXT, 
	tag TEXT, 
	leverage_multiplier TEXT, 
	exit_reason TEXT, 
	session_id TEXT, 
	currency_code TEXT NOT NULL, 
	instrument TEXT NOT NULL, 
	contract_multiplier TEXT, 
	memo TEXT, 
	is_correction INTEGER NOT NULL, 
	correction_of TEXT, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_transactions_side CHECK (side IS NULL OR side IN ('long', 'short')), 
	CONSTRAINT ck_transactions_direction CHECK (direction IS NULL OR direction IN ('bullish', 'bearish')), 
	CONSTRAINT ck_transactions_currency CHECK (length(currency_code) = 3), 
	CONSTRAINT ck_transactions_instrument CHECK (instrument IN ('equity', 'option', 'cash')), 
	CONSTRAINT ck_transactions_is_correction CHECK (is_correction IN (0, 1)), 
	UNIQUE (fitid)
);

CREATE TABLE audit_log (
	id INTEGER NOT NULL, 
	logged_at TEXT NOT NULL, 
	actor TEXT NOT NULL, 
	action TEXT NOT NULL, 
	transaction_id INTEGER, 
	fitid TEXT, 
	account_code TEXT, 
	memo TEXT, 
	payload_sha256 TEXT, 
	prev_hash TEXT NOT NULL, 
	row_hash TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(transaction_id) REFERENCES transactions (id)
);

CREATE INDEX ix_audit_log_transaction_id ON audit_log (transaction_id);

CREATE TABLE splits (
	id INTEGER NOT NULL, 
	transaction_id INTEGER NOT NULL, 
	account_code TEXT NOT NULL, 
	debit INTEGER NOT NULL, 
	credit INTEGER NOT NULL, 
	currency_code TEXT NOT NULL, 
	memo TEXT, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_splits_one_side CHECK (debit >= 0 AND credit >= 0 AND (debit = 0) <> (credit = 0)), 
	CONSTRAINT ck_splits_currency CHECK (length(currency_code) = 3), 
	FOREIGN KEY(transaction_id) REFERENCES transactions (id)
);

CREATE INDEX ix_splits_transaction_id ON splits (transaction_id);

CREATE TRIGGER trg_transactions_no_update BEFORE UPDATE ON transactions
BEGIN
    SELECT RAISE(ABORT, 'transactions is append-only: UPDATE refused');
END;

CREATE TRIGGER trg_transactions_no_delete BEFORE DELETE ON transactions
BEGIN
    SELECT RAISE(ABORT, 'transactions is append-only: DELETE refused');
END;

CREATE TRIGGER trg_splits_no_update BEFORE UPDATE ON splits
BEGIN
    SELECT RAISE(ABORT, 'splits is append-only: UPDATE refused');
END;

CREATE TRIGGER trg_splits_no_delete BEFORE DELETE ON splits
BEGIN
    SELECT RAISE(ABORT, 'splits is append-only: DELETE refused');
END;

CREATE TRIGGER trg_audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;

CREATE TRIGGER trg_audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;
