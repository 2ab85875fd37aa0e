"""FastAPI layer: starts, signals and queries workflows; reads CRM state."""
