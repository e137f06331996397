"""Settings schema, loading, validation rules, secrets and the common CLI flags (imports only core)."""
