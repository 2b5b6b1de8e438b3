"""The study YAML: design space, oracle, goal, budget, executor, model, acquisition, seed.

`load_study(path)` validates the whole file and raises StudyError with a one-line message that names the
field (e.g. `budget.simulations: Input should be greater than or equal to 1`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from porelab.active_learning.campaign.space import Choice, DesignSpace, Dimension, Sequence, check_name
from porelab.base.errors import PorelabError
from porelab.base.yaml_file import read_yaml
from porelab.sim.design import GROUP_CHARGE, PRESETS, SPECIES, DesignError, make_conditions, make_design
from porelab.sim.md_settings import MDSettings
from porelab.surrogate.params import check_model_params


class StudyError(PorelabError, ValueError):
    """A malformed or impossible study; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Base(_Strict):
    """Fixed values every candidate shares (dimensions of the space override them)."""

    design: dict[str, Any] = Field(default_factory=dict)
    conditions: dict[str, Any] = Field(default_factory=dict)


class OracleSpec(_Strict):
    """kind md | continuum | user; `path` = module:Class or path/to/file.py:Class for a user oracle."""

    kind: Literal["md", "continuum", "user"] = "continuum"
    path: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> OracleSpec:
        if self.kind == "user":
            if not self.path or ":" not in self.path:
                raise ValueError("a user oracle needs path: 'module:Class' or 'path/to/file.py:Class'")
        elif self.path is not None:
            raise ValueError(f"path is only for kind: user (kind is {self.kind})")
        if self.kind == "md":
            try:
                MDSettings(**self.settings)
            except TypeError as err:
                raise ValueError(f"settings: {err}") from None
            except DesignError as err:
                raise ValueError(str(err)) from None
        return self


class RungSpec(OracleSpec):
    """A cheaper oracle below the study's own (the target fidelity) in a fidelity ladder: its round-0 share, its
    cap, and BoFire's fidelity threshold (a pick is measured here only while the model's epistemic std of the
    objective at this fidelity exceeds it, i.e. while this oracle can still tell something)."""

    initial: int = Field(0, ge=0, description="round-0 designs measured at this fidelity (beside budget.initial "
                                              "at the target)")
    simulations: int = Field(ge=0, description="at most this many trials at this fidelity")
    threshold: float = Field(0.1, ge=0, description="epistemic std of the objective (ln units) above which a pick "
                                                    "may be measured here")


class Selectivity(_Strict):
    """Selectivity = (sum of |flux|/c over numerator species) / (same over denominator), at the ON field."""

    numerator: list[str] = Field(min_length=1)
    denominator: list[str] = Field(min_length=1)

    @field_validator("numerator", "denominator")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for s in v:
            if s not in SPECIES:
                raise ValueError(f"species {s!r} is unknown; known: {', '.join(SPECIES)}")
        return v


class Goal(_Strict):
    """What the campaign looks for at `field_abs_V_per_nm` (default: the largest |E| measured): objective icr, the
    rectification of the better orientation max(ICR, 1/ICR) (campaign.targets), always maximised (a target above
    1), or selectivity, maximised or minimised."""

    objective: Literal["icr", "selectivity"] = "icr"
    maximize: bool = True
    field_abs_V_per_nm: float | None = Field(None, gt=0)
    on_current_min_nA: float | None = Field(None, gt=0, description="constraint for constrained EI, nA")
    target: float | None = Field(None, gt=0, description="stop when the best objective (max(ICR, 1/ICR) or S) "
                                                                 "reaches it")
    selectivity: Selectivity | None = None

    @model_validator(mode="after")
    def _check(self) -> Goal:
        if self.objective == "selectivity" and self.selectivity is None:
            raise ValueError("objective selectivity needs selectivity: {numerator: [...], denominator: [...]}")
        if self.objective == "icr" and not self.maximize:
            raise ValueError("objective icr maximises max(ICR, 1/ICR), the rectification; maximize: false is not "
                             "supported")
        if self.objective == "icr" and self.target is not None and self.target <= 1:
            raise ValueError(f"target {self.target:g} is met at once: max(ICR, 1/ICR) >= 1; give a target above 1")
        return self


class Budget(_Strict):
    simulations: int = Field(ge=1, le=1_000_000, description="simulations the campaign may start at its oracle "
                             "(each rung of a fidelity ladder has its own cap, `fidelities[i].simulations`)")
    initial: int = Field(4, ge=1, description="space-filling simulations before the first model")
    batch: int = Field(4, ge=1, description="picks per acquisition round")
    wall_clock_min: float | None = Field(None, gt=0, description="driver time limit, minutes")

    @model_validator(mode="after")
    def _check(self) -> Budget:
        if "initial" in self.model_fields_set and self.initial > self.simulations:  # the default 4 is cut to fit
            raise ValueError(f"initial {self.initial} exceeds simulations {self.simulations}: the initial design is "
                             "part of the budget; give initial <= simulations")
        self.initial = min(self.initial, self.simulations)
        return self


# the worker-job fields of ExecutorSpec, and the dask-jobqueue keywords they stand for (refused in cluster_options)
JOB_FIELDS = ("cores", "memory", "walltime", "partition", "account", "job_extra")
JOBQUEUE_KEYS = {"cores": "cores", "job_cpu": "cores", "memory": "memory", "walltime": "walltime",
                 "queue": "partition", "account": "account", "job_extra_directives": "job_extra"}


class ExecutorSpec(_Strict):
    """local (process pool) or dask (address | LocalCluster | slurm/pbs via dask-jobqueue). On Slurm/PBS each worker
    is a batch job that runs one simulation at a time, sized by the job fields (cores ... job_extra);
    `cluster_options` passes any other keyword to dask-jobqueue's SLURMCluster / PBSCluster."""

    kind: Literal["local", "dask"] = "local"
    workers: int = Field(2, ge=1, le=4096, description="worker processes; slurm/pbs: worker jobs")
    address: str | None = None
    cluster: Literal["local", "slurm", "pbs"] = "local"
    cluster_options: dict[str, Any] = Field(default_factory=dict)
    gpu: bool = Field(False, description="one GPU per worker: each simulation takes the Dask resource GPU=1, MD runs "
                                         "on OpenMM's CUDA platform; slurm: each worker job asks for --gres=gpu:1")
    max_attempts: int = Field(3, ge=1, le=100, description="tries of a task that crashes or loses its worker")
    refill: Literal["async", "batch"] = "async"
    cores: int = Field(1, ge=1, le=1024, description="slurm/pbs: CPU cores per worker job (its simulation's threads)")
    memory: str = Field("4GB", description="slurm/pbs: memory per worker job, e.g. 4GB")
    walltime: str = Field("04:00:00", description="slurm/pbs: time limit per worker job, [D-]HH:MM:SS; a simulation "
                                                  "it cuts off is retried on a new job")
    partition: str | None = Field(None, min_length=1, description="slurm: partition (-p); pbs: queue (-q)")
    account: str | None = Field(None, min_length=1, description="slurm/pbs: account charged (-A)")
    job_extra: list[str] = Field(default_factory=list, description="slurm/pbs: more directives for each worker job, "
                                 "e.g. ['--qos=short'] (without #SBATCH / #PBS)")

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)? ?[KMGT]i?B", v):
            raise ValueError(f"{v!r} is not a size such as 4GB or 500MB")
        return v

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, v: str) -> str:
        if not re.fullmatch(r"(\d+-)?\d{1,3}:\d\d:\d\d", v):
            raise ValueError(f"{v!r} is not [D-]HH:MM:SS, e.g. 04:00:00 or 1-00:00:00")
        return v

    @model_validator(mode="after")
    def _check(self) -> ExecutorSpec:
        if self.kind == "local" and (self.address or self.cluster != "local" or self.cluster_options):
            raise ValueError("address/cluster/cluster_options need kind: dask")
        jobs = self.kind == "dask" and not self.address and self.cluster in ("slurm", "pbs")
        given = [f for f in JOB_FIELDS  # not fields_set: a frozen study.yaml spells every default out
                 if getattr(self, f) != type(self).model_fields[f].get_default(call_default_factory=True)]
        if not jobs and given:
            raise ValueError(f"{', '.join(given)}: worker-job fields, for kind: dask with cluster: slurm or pbs")
        for key in self.cluster_options:
            if jobs and key in JOBQUEUE_KEYS:
                raise ValueError(f"cluster_options.{key}: give it as executor.{JOBQUEUE_KEYS[key]}")
        for d in self.job_extra:
            if not d.startswith("-"):
                raise ValueError(f"job_extra: {d!r} is not a directive; give options such as --qos=short")
        return self


class ModelSpec(_Strict):
    kind: Literal["gnn", "rf", "gp"] = "gnn"
    params: dict[str, Any] = Field(default_factory=dict)
    novelty_floor: bool | Literal["decay", "flat"] = Field(
        True, description="floor the model's epistemic std where a candidate is unlike every measured design "
        "(porelab.surrogate.novelty); false: the model's own std; decay: the floor's variance times the share of "
        "the budget left (explore first, exploit at the end); flat: the floor in full while the model's means over "
        "the pool are flat, fading as they spread as widely as the measured labels (CampaignModel.flat_floor_weight)")

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        """Refuse unknown or out-of-range keywords now, not as a silent model-less campaign later."""
        check_model_params(self.kind, self.params)
        return self


class AcquisitionSpec(_Strict):
    kind: str = "ucb"
    params: dict[str, Any] = Field(default_factory=dict)
    pool_size: int = Field(1024, ge=1, le=1_000_000)
    diverse: bool = Field(True, description="spread each batch with k-means++ on the model's embeddings")
    explore_fraction: float = Field(0.0, ge=0, le=1, description="share of each model-guided batch taken from "
                                    "the pool's space-filling (Sobol) order instead (a guard against exploration "
                                    "collapsing on a model that learned only a flat region; off by default: it "
                                    "did not improve the worst seed on benchmarks/al_landscape.py)")
    pool_from: str | None = Field(None, description="a directory of recorded measurements (a measurement store "
                                  "such as data/md; relative: to the working directory): the pool is their "
                                  "questions (design and conditions), in a seeded random order, instead of a "
                                  "sample of the space; for a campaign replayed on recorded results "
                                  "(sim/replay.py)")
    extend_max_ps: float | None = Field(None, gt=0, description="MD (or a user oracle with a `length_setting`): a "
                                        "round may extend a finished run whose objective is still undecided "
                                        "(production per field doubled, up to this many ps) instead of starting a "
                                        "new design, by value per cost (iteration.choose_extensions); None: off")

    @model_validator(mode="after")
    def _check(self) -> AcquisitionSpec:
        # on use: acquisition imports scipy and sklearn (~1.5 s), which a study that is only read does not need
        from porelab.active_learning.campaign.acquisition import resolve_acquisition

        self.kind = self.kind.lower().replace("-", "_")
        try:
            resolve_acquisition(self.kind, None, **self.params)  # ValueError names a bad kind or keyword
        except TypeError as err:  # a keyword of the wrong type, e.g. beta: x
            raise ValueError(f"params {self.params}: {err}") from None
        return self


class Problem(_Strict):
    """What both a campaign and an inverse-design study describe: the space, its base, the oracle and the goal."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    preset: str | None = None
    base: Base = Base()
    space: dict[str, Dimension] = Field(default_factory=dict)
    oracle: OracleSpec = OracleSpec()
    goal: Goal = Goal()

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str | None) -> str | None:
        if v is not None and v not in PRESETS:
            raise ValueError(f"preset {v!r} is unknown; known: {', '.join(PRESETS)}")
        return v

    @field_validator("space")
    @classmethod
    def _names(cls, v: dict) -> dict:
        for name in v:
            check_name(name)
        return v

    @model_validator(mode="after")
    def _check_base(self) -> Problem:
        if not self.space:  # checked here: a field validator does not see the default {}
            raise ValueError("space: the design space is empty; give at least one dimension, e.g. spacing_nm: "
                             "{low: 0.3, high: 0.7}")
        _check_groups(self.space.get("layers"))
        try:
            make_design(self.base.design, self.preset)
            make_conditions(self.base.conditions)
        except DesignError as err:
            raise ValueError(f"base {err}") from None
        return self

    def design_space(self) -> DesignSpace:
        return DesignSpace(self.space, self.base.design, self.base.conditions, self.preset)


def _check_groups(dim: Dimension | None) -> None:
    """Refuse a `layers` dimension naming a rim group the design does not know: its designs could not be built and
    would be dropped from the pool without a word (the space silently narrowed)."""
    if isinstance(dim, Sequence):
        groups = list(dim.sequence)
    elif isinstance(dim, Choice):
        groups = [g for c in dim.choices for g in (c if isinstance(c, list | tuple) else [c])]
    else:
        return
    for g in groups:
        if not isinstance(g, str) or g not in GROUP_CHARGE:
            raise ValueError(f"space.layers: group {g!r} is unknown; known: {', '.join(GROUP_CHARGE)}")


class Study(Problem):
    """A campaign: the problem plus its budget, executor, model and acquisition."""

    budget: Budget
    fidelities: list[RungSpec] = Field(default_factory=list, description="cheaper oracles below `oracle`, cheapest "
                                   "first: a fidelity ladder (iteration.choose_fidelities)")
    executor: ExecutorSpec = ExecutorSpec()
    model: ModelSpec = ModelSpec()
    # a factory, not an instance: its validator imports campaign.acquisition, which imports campaign.targets, which
    # imports this module; an instance here would run it while this module is still being imported
    acquisition: AcquisitionSpec = Field(default_factory=AcquisitionSpec)

    @model_validator(mode="after")
    def _check_campaign(self) -> Study:
        if self.acquisition.kind == "constrained_ei" and self.goal.on_current_min_nA is None:
            raise ValueError("acquisition constrained_ei needs goal.on_current_min_nA (the ON current threshold, nA)")
        if self.fidelities and self.acquisition.kind == "grid":
            raise ValueError("fidelities: a grid study measures every point at its oracle; drop the ladder or the grid")
        if self.acquisition.extend_max_ps is not None and self.oracle.kind == "continuum":
            raise ValueError("acquisition.extend_max_ps extends MD (or a user oracle's) runs; the continuum has no "
                             "run length")
        return self

    def canonical(self) -> str:
        doc = self.model_dump(mode="json")
        if doc["acquisition"]["extend_max_ps"] is None:  # studies from before extensions keep their digest
            del doc["acquisition"]["extend_max_ps"]
        if doc["model"]["novelty_floor"] is True:  # and those from before the floor (the way models are built now)
            del doc["model"]["novelty_floor"]
        for f in JOB_FIELDS:  # and those from before the worker-job fields, where they hold their defaults
            if doc["executor"][f] == ExecutorSpec.model_fields[f].get_default(call_default_factory=True):
                del doc["executor"][f]
        return json.dumps(doc, sort_keys=True)

    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:16]


def _loc_text(loc: tuple) -> str:
    """A location as the study spells it (`space.layers.length`): the union kinds' and validators' names left out."""
    return ".".join(str(p) for p in loc if not str(p).startswith(("function-", "Range", "Choice", "Seq")))


def _unwrap(tp: Any) -> Any:
    """An annotation without Annotated[...] and Optional's None."""
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) in (typing.Union, types.UnionType) and \
                len(args := [a for a in typing.get_args(tp) if a is not type(None)]) == 1:
            tp = args[0]
        else:
            return tp


def _keys_at(kind: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the mapping at `loc` (an error's location in a `kind` document) may hold; [] when not a model."""
    tp: Any = kind
    for part in loc:
        tp = _unwrap(tp)
        if str(part).startswith("function-"):
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) in (list, tuple):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) in (typing.Union, types.UnionType):  # a tagged union: the part names the member
            tp = next((a for a in typing.get_args(tp) if getattr(_unwrap(a), "__name__", None) == part), None)
        else:
            return []
    tp = _unwrap(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _error_text(err: ValidationError, kind: type[BaseModel] = BaseModel) -> str:
    """The first real cause of a validation error, one line, its location as the study spells it. An unknown key is
    named as `unknown key 'budjet' (did you mean 'budget'?)` (difflib against the keys allowed there), and comes
    first when it is the misspelling of a key reported missing beside it (the `Field required` is its consequence,
    not counted among the others)."""
    errors = err.errors()

    def meant(e) -> tuple | None:  # the missing key an unknown key evidently misspells, as its location
        *parent, key = e["loc"]
        close = difflib.get_close_matches(str(key), _keys_at(kind, tuple(parent)), n=1)
        return (*parent, close[0]) if close else None

    missing = {tuple(e["loc"]) for e in errors if e["type"] == "missing"}
    e = next((e for e in errors if e["type"] == "extra_forbidden" and meant(e) in missing), errors[0])
    if e["type"] == "extra_forbidden":
        *parent, key = e["loc"]
        keys, target = _keys_at(kind, tuple(parent)), meant(e)
        hint = f" (did you mean {target[-1]!r}?)" if target else f"; known: {', '.join(keys)}" if keys else ""
        where = _loc_text(tuple(parent))
        msg = f"{where + ': ' if where else ''}unknown key {str(key)!r}{hint}"
        n_more = sum(x is not e and not (x["type"] == "missing" and tuple(x["loc"]) == target) for x in errors)
    else:
        loc, text = _loc_text(e["loc"]), e["msg"].removeprefix("Value error, ")
        if e["type"] == "dimension_kind":
            text += f" (got {e['input']!r})"
        msg, n_more = f"{loc}: {text}" if loc else text, len(errors) - 1
    return msg + (f" (and {n_more} more)" if n_more else "")


def parse_study(doc: Any, where: str = "study", kind: type[Problem] = Study) -> Problem:
    """Validate a parsed YAML document as a `kind` (Study by default); raises StudyError naming the field."""
    if not isinstance(doc, dict):
        raise StudyError(f"{where}: expected a mapping with keys name, space, oracle, goal, ...")
    try:
        return kind.model_validate(doc)
    except ValidationError as err:
        raise StudyError(f"{where}: {_error_text(err, kind)}") from None


def resolve_oracle_path(problem: Problem, path: str | Path) -> Problem:
    """Make the user oracles' relative file paths absolute (relative to the YAML at `path`)."""
    for spec in [problem.oracle, *getattr(problem, "fidelities", [])]:
        if spec.kind == "user":
            target, _, cls = spec.path.rpartition(":")
            if target.endswith(".py") and not Path(target).is_absolute():
                spec.path = f"{(Path(path).parent / target).resolve()}:{cls}"
    return problem


def load_study(path: str | Path) -> Study:
    """Read and validate a campaign study YAML."""
    return resolve_oracle_path(parse_study(read_yaml(path, StudyError, "study YAML"), str(path)), path)
