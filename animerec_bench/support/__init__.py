"""Support: paths, atomic writes, the machine's description, timing. Imports nothing above it."""
