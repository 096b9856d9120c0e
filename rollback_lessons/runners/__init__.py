"""The same ``Saga`` on production engines: ``runners.temporal`` (Temporal)."""
