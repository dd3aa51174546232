"""The small Django project the backend is tested in (configured by ../conftest.py)."""
