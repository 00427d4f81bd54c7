"""The inference API: the HTTP adapter over :mod:`ativo.serve` (routing, validation, the prediction log)."""
