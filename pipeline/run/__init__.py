"""Running the night: the run report, the task ledger, the run lock and logging."""
