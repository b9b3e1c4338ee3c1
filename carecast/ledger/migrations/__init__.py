"""The ledger's schema history (Alembic): ``versions/`` holds one migration per change, oldest first.

``carecast.ledger.migrate.upgrade`` applies them when a ledger is opened; a new change to ``schema.py`` needs a new
revision here (``alembic -c carecast/ledger/migrations/alembic.ini revision --autogenerate -m "what changed"``).
"""
