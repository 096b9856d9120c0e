"""The lessons' pipelines: small worlds with state to break and undo."""
