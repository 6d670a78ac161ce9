"""Persistence: SQLAlchemy models for the 8 tables + 2 views, Alembic migrations, repository."""
