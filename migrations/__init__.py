"""Alembic migrations; the only place the schema is made or changed."""
