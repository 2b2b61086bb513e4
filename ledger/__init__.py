"""The ledger: PostgreSQL record of signals, trades, orders and decisions (asyncpg)."""
