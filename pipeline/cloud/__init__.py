"""Talking to clouds: sessions and discovery, Glance and Swift uploads, compute and network for the test boot, reachability, retention and cleanup."""
