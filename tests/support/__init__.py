"""Test helpers that build real parts: conda channels and prefixes, Redis servers."""
