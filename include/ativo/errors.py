"""Exceptions that carry a message a person can act on."""

from __future__ import annotations


class AtivoError(Exception):
    """Base class for every error Ativo raises on purpose."""


class SettingsError(AtivoError, ValueError):
    """An ``ATIVO_*`` environment variable has a bad value; the message names the variable and the reason."""


class SpecError(AtivoError):
    """A model spec is invalid; the message names the file and the field.

    Attributes:
        problems: one ``field 'a.b': reason`` line per problem found (the message joins them).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


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


class DeliveryError(AtivoError, ValueError):
    """A delivery cannot be shaped to its spec's landing layout (a column an id rule reads is missing, …)."""


class IntervalNotOver(AtivoError):
    """A data interval that has not ended yet was asked to run; a backfill can run it once it has ended."""
