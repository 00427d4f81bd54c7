"""Exceptions that carry a message a person can act on."""

from __future__ import annotations


class AtivoError(Exception):
    """Base class for every error Ativo raises on purpose."""


class SettingsError(AtivoError, ValueError):
    """An ``ATIVO_*`` environment variable has a bad value; the message names the variable and the reason."""


class SpecError(AtivoError):
    """A model spec is invalid; the message names the file and the field."""


class ReferenceDataError(AtivoError):
    """The reference data could not be fetched or does not match its pinned checksum."""


class LandingMissing(AtivoError):
    """No landing batch exists (yet) for a data interval; worth retrying later."""


class BatchRejected(AtivoError):
    """A landing batch failed validation and was quarantined; retrying will not help.

    Attributes:
        reasons: one readable line per failed check.
        report_uri: where the full validation report was written.
    """

    def __init__(self, partition: str, reasons: list[str], report_uri: str | None = None) -> None:
        self.partition = partition
        self.reasons = reasons
        self.report_uri = report_uri
        where = f"; report: {report_uri}" if report_uri else ""
        super().__init__(f"batch {partition} quarantined: " + "; ".join(reasons) + where)


class DatasetVersionError(AtivoError):
    """A dataset version could not be created or resolved."""
