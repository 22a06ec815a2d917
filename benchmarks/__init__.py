"""Scripts that produce BENCHMARKS.md; run as modules from the repo root, not collected as tests."""
