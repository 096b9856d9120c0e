"""`make bench`: print every benchmark's table."""

import sys

from . import durability, engine, exercises, explorer, journal, panel, parallel

print(f"rollback-lessons benchmarks (python {sys.version.split()[0]})\n")
engine.run()
print()
explorer.run()
print()
parallel.run()
print()
panel.run()
print()
journal.run()
print()
durability.run()
print()
exercises.run()
