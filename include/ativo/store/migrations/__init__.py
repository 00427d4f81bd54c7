"""The platform DB's Alembic migrations: ``env.py``, the revision template and ``versions/`` (one file a revision).

Run through :mod:`ativo.store.migrate` (``ativo db upgrade``), which configures Alembic in code: no ``alembic.ini``.
"""
