"""Pure trading-domain logic and models: no I/O, safe to import into workflows."""
