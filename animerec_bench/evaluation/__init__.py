"""Evaluation: scoring a fitted model, full ranking, significance."""
