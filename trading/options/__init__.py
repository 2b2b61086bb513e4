"""Options: chain values, the contract ranker, the iron condor planner and its exit rules (pure)."""
