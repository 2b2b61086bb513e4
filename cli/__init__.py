"""The starter CLI: one module per command group."""
