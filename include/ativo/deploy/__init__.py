"""Deployment: putting a version that passed its gates on live traffic and deciding its fate.

- :mod:`ativo.deploy.promotion` moves what the servers route (``champion``, ``canary``, ``shadow``, ``previous``)
  through the registry's signed promotion records (:mod:`ativo.model.registry`), with who, why and the figures;
- :mod:`ativo.deploy.watch` judges a canary or shadow on the servers' live figures;
- :mod:`ativo.deploy.steps` is the deployment as plain steps (infra check, begin, check, conclude, abandon), which
  the deploy DAG wires and a test or a notebook can call.
"""
