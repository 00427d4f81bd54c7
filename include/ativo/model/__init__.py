"""The model artifact contract: what a registered version is on disk and how every consumer reads it.

Training writes a version through :func:`ativo.model.artifact.log_booster` (the native ``model.ubj`` and its
sha256, recorded as the tag ``ativo.model_sha256``); the gates, the inference API and the deploy steps read it back
through :func:`ativo.model.artifact.load_version`, which never unpickles and refuses a file whose sha256 differs.
:mod:`ativo.model.encoding` turns feature frames and request rows into the booster's input, the same way for
training, gates and serving; :mod:`ativo.model.policy` is the per-group decision policy a version may carry.
"""
