"""What scripts/benchmark.py measures with: step-time arms (arms), the hand-written loop they are
compared with (plain_loop), exact op counts (opcount) and time to accuracy (accuracy)."""
