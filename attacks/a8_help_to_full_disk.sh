#!/bin/sh
# Item 2: `--help` written to a full disk (/dev/full) exits 0 with no word, although every
# other output that cannot be written is one line and exit 2 (README, "The same story").
#   sh attacks/a8_help_to_full_disk.sh
B="$(dirname "$0")/../.venv/bin/rollback-lessons"
for args in "--help" "recover --help" "journal show --help" "demo --help"; do
  $B $args > /dev/full; echo "rollback-lessons $args > /dev/full: exit $?"
done
$B demo > /dev/full; echo "(for comparison) rollback-lessons demo > /dev/full: exit $?"
