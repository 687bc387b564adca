"""Test support for Rollwise. Nothing here is imported by Rollwise at run time; it needs the `dev`
extra (kmock) and is meant for tests and benchmarks only."""
