"""The burn-in day report (`starter.py report day`): figures, verdict, charts and HTML (pure)."""
