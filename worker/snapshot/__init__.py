"""Snapshot sources: ways to read what a conda prefix holds."""
