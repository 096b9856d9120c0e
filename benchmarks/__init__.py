"""Speed goals, measured as ratios against a baseline timed in the same run (`make bench`)."""
