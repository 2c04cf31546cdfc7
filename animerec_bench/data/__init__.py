"""Data: import, synthesis, protocols, cached split files and split export."""
