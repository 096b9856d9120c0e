"""Durable undo logs: the SQLite journal, recovery after a crash, and undos by name.

Import the parts you use (``durable.journal`` loads sqlite3; ``durable.registry`` does not).
"""
