"""Provider adapters (email, SMS, e-signature, enrichment sources): each a small Protocol with a real
and an embedded implementation. Messaging lands with issue #3."""
