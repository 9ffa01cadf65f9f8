"""Real parts for tests: a served BentoML model and a private PostgreSQL.

Importable as ``helpers`` (pytest puts tests/ on the path); the fixtures are
registered for every test by tests/conftest.py.
"""
