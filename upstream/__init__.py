"""Upstream OpenStack (Keystone, Glance, Swift) on loopback: see run.py."""
