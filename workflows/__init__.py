"""Temporal workflow definitions. Pure: no I/O, no DB, no provider SDK imports."""
