"""Shared runtime pieces: settings, database, Temporal client, logging, metrics."""
