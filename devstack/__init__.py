"""The embedded development stack: Temporal dev server, PostgreSQL, paper broker, worker."""
