"""The YAML definition language (schema, loader, validator) and the shipped library. Lands with issue #5."""
