"""The shared base below every other layer: errors, the one subprocess wrapper, atomic files, waits, checksums, progress, the format table."""
