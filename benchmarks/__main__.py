"""`make bench`: print every benchmark's table."""

from . import engine

print(f"rollback-lessons benchmarks (python {__import__('sys').version.split()[0]})\n")
engine.run()
