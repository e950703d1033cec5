"""Pure domain: standard library and pydantic only (no broker, driver or logger)."""
