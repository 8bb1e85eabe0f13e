"""Integrations with training frameworks; each module imports its framework, so import it
only when that framework is in use (``Run.callback()`` does)."""
