"""Execution: jobs, the runner (parent), the worker (job process), executors, tuning, progress."""
