"""Speed benchmarks, run from the repository root (bench/README.md); they are not tests."""
