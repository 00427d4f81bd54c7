"""One file per revision, ``NNNN_<slug>.py``, the number its revision id (``python -m ativo.store.migrate``)."""
