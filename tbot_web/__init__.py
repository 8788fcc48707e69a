"""RIGD TradeBot web dashboard: a separate Flask process that reads status, logs and ledgers, and writes only
control files, user records and (for admins, through the config API) the encrypted bot configuration."""
