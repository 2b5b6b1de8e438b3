"""Executors run oracle tasks on workers: a local process pool (default) or Dask distributed.

A task is keyed by its design id: submitting a design that is already pending is a no-op. A worker that finds a
measurement.json in the task's run directory returns it instead of simulating again only when it answers the same
question (design id) from the same oracle (`Measurement.oracle` equal to the oracle's identity), turned to the
orientation asked (`sim.observables.oriented`: the mirror image at the opposite fields has the same id); a
measurement by another oracle is refused in one line, neither reused nor overwritten. A task of an MD-fidelity
oracle also carries the workspace's measurement store (sim.store): the simulation runs in the store's entry for
its question, and a stored answer that reaches the task's length is reused by every campaign of the workspace.
`wait(timeout)` returns results as they arrive, so the driver can refill a free worker at once.
An oracle exception or a lost worker comes back as a TaskResult with `error` set; the driver decides on
retries. Workers never touch the ledger or MLflow.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import errno
import json
import multiprocessing
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from porelab.active_learning.campaign.oracles import check_measurement, identity_of, make_oracle, reaches, stamp
from porelab.base.errors import PorelabError
from porelab.sim.design import Conditions, Design
from porelab.sim.measurement import MEASUREMENT_FILE, Measurement, same_oracle
from porelab.sim.observables import oriented
from porelab.sim.store import MeasurementStore, default_store


class ExecutorError(PorelabError, RuntimeError):
    """An executor that cannot start (missing optional dependency, unreachable scheduler)."""


@dataclass(frozen=True)
class Task:
    design_id: str
    design: dict
    conditions: dict
    oracle: dict  # {"kind", "settings", "path"}
    run_dir: str
    attempt: int = 1
    extend_ps: float | None = None  # an extension: the production per field to reach (the oracle spec says so too)
    store: str | None = None  # the measurement store's root (sim.store): the oracle runs in its entry, reused there


@dataclass(frozen=True)
class TaskResult:
    design_id: str
    attempt: int
    measurement: str | None  # Measurement JSON (ok or failed with its reason)
    error: str | None  # the task crashed or its worker was lost
    busy_s: float  # worker time spent, s
    worker: str
    reused: bool = False  # measurement.json was already in the run directory
    storage: bool = False  # the error is the disk's (full, read-only, quota), not the design's


STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


_ORACLES: dict[str, object] = {}
_ORACLES_LOCK = threading.Lock()  # a Dask worker runs tasks in threads: a user module is imported by one at a time


def _oracle(spec: dict):
    """The oracle of a task's spec, built once per worker process."""
    key = json.dumps(spec, sort_keys=True)
    with _ORACLES_LOCK:
        if key not in _ORACLES:
            _ORACLES[key] = make_oracle(spec["kind"], spec.get("settings"), spec.get("path"))
    return _ORACLES[key]


def task_identity(spec: dict) -> dict:
    """The identity (`sim.measurement.oracle_identity`) of the oracle a task spec {kind, settings, path} names."""
    return identity_of(_oracle(spec), spec["kind"], spec.get("settings"), spec.get("path"))


def store_for(fidelity: str) -> str | None:
    """The measurement store a task of this fidelity goes through: the workspace's (`sim.store.default_store`) for
    MD, None for the cheap ones (and when the store is off)."""
    store = default_store() if fidelity == "md" else None
    return None if store is None else str(store)


def run_task(task: Task) -> TaskResult:
    """Worker side: run (or reuse, see the module docstring) one design's measurement, oriented as asked, and save
    it atomically in its run directory."""
    t0 = time.perf_counter()
    job = os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")  # the batch job the worker runs in
    worker = f"{socket.gethostname()}:{os.getpid()}" + (f" job {job}" if job else "")
    try:
        design, conditions = Design.model_validate(task.design), Conditions.model_validate(task.conditions)
        run_dir = Path(task.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = run_dir / MEASUREMENT_FILE
        oracle, identity = _oracle(task.oracle), task_identity(task.oracle)
        if saved.exists():
            m = Measurement.load(saved)
            if m.design_id != task.design_id or not same_oracle(m, identity):
                what = json.dumps(m.oracle, sort_keys=True) if m.oracle else "an unnamed oracle"
                return TaskResult(task.design_id, task.attempt, None,
                                  f"{saved} holds a measurement of design {m.design_id} by {what}, not of "
                                  f"{task.design_id} by {json.dumps(identity, sort_keys=True)}: neither reused nor "
                                  "overwritten; move it away or use another directory",
                                  time.perf_counter() - t0, worker)
            if reaches(m, task.extend_ps):
                return TaskResult(task.design_id, task.attempt, oriented(m, design, conditions).to_json(), None,
                                  time.perf_counter() - t0, worker, reused=True)
        if task.store is None:
            m = _simulate(oracle, identity, task, design, conditions, run_dir)
        else:
            m, reused = MeasurementStore(task.store).answer(
                identity, design, conditions, lambda d, c, entry: _simulate(oracle, identity, task, d, c, entry),
                lambda held: reaches(held, task.extend_ps))
            if reused:
                m.save(saved)
                return TaskResult(task.design_id, task.attempt, m.to_json(), None, time.perf_counter() - t0, worker,
                                  reused=True)
        m.save(saved)
        return TaskResult(task.design_id, task.attempt, m.to_json(), None, time.perf_counter() - t0, worker)
    except Exception as err:  # the oracle (or its loading) raised: reported, the driver retries or fails it
        text = f"{type(err).__name__}: {err}".strip().splitlines()[0][:500]
        storage = isinstance(err, OSError) and err.errno in STORAGE_ERRNOS
        return TaskResult(task.design_id, task.attempt, None, text, time.perf_counter() - t0, worker, storage=storage)


def _simulate(oracle, identity: dict, task: Task, design: Design, conditions: Conditions, where: Path) -> Measurement:
    """The oracle's answer to (design, conditions), run in `where`, checked, stamped and oriented as asked."""
    m = check_measurement(oracle(design, conditions, where), design, conditions,
                          getattr(oracle, "fidelity", task.oracle["kind"]))
    return oriented(stamp(m, identity), design, conditions)


def _watch_parent(ppid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != ppid:  # the driver died (even kill -9): leave no orphan simulating
            os._exit(3)


def _init_worker(ppid: int, threads: int | None) -> None:
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
    threading.Thread(target=_watch_parent, args=(ppid,), daemon=True).start()


class _Slots:
    """Bookkeeping both executors share: in-flight tasks keyed by design id, and free worker slots."""

    n_workers: int
    _futures: dict

    @property
    def pending(self) -> set[str]:
        return set(self._futures)

    def free_slots(self) -> int:
        return max(0, self.n_workers - len(self._futures))


class LocalExecutor(_Slots):
    """A process pool of `workers` (spawned) processes on this machine."""

    def __init__(self, workers: int = 2, threads_per_worker: int | None = 1):
        self.n_workers = workers
        self._threads = threads_per_worker
        self._futures: dict[str, tuple[cf.Future, Task]] = {}
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")
        return cf.ProcessPoolExecutor(self.n_workers, mp_context=ctx, initializer=_init_worker,
                                      initargs=(os.getpid(), self._threads))

    def submit(self, task: Task) -> bool:
        if task.design_id in self._futures:
            return False
        try:
            fut = self._pool.submit(run_task, task)
        except cf.process.BrokenProcessPool:
            self._pool = self._new_pool()
            fut = self._pool.submit(run_task, task)
        self._futures[task.design_id] = (fut, task)
        return True

    def wait(self, timeout: float | None = None) -> list[TaskResult]:
        if not self._futures:
            return []
        done, _ = cf.wait([f for f, _ in self._futures.values()], timeout=timeout,
                          return_when=cf.FIRST_COMPLETED)
        out, broken = [], False
        for did, (fut, task) in list(self._futures.items()):
            if fut not in done:
                continue
            del self._futures[did]
            try:
                out.append(fut.result())
            except cf.process.BrokenProcessPool as err:
                broken = True
                out.append(TaskResult(did, task.attempt, None, f"worker lost: {err}", 0.0, "?"))
            except Exception as err:
                out.append(TaskResult(did, task.attempt, None, f"{type(err).__name__}: {err}", 0.0, "?"))
        if broken:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(_Slots):
    """Dask distributed: a scheduler `address`, a LocalCluster on 127.0.0.1, or Slurm/PBS via dask-jobqueue
    (`cluster_options`: the SLURMCluster / PBSCluster keywords, see `jobqueue_options`; `workers` jobs, kept at that
    number: a job that ends or is cancelled is replaced by a new one).

    Tasks are keyed `porelab-<design_id>-a<attempt>`; with `gpu` each task asks for the resource GPU=1 and MD runs
    on OpenMM's CUDA platform (`on_gpu`).
    """

    def __init__(self, workers: int = 2, address: str | None = None, cluster: str = "local",
                 cluster_options: dict | None = None, gpu: bool = False):
        try:  # the optional extra `cluster`
            import distributed
        except ImportError:
            raise ExecutorError("executor kind dask needs dask[distributed]: pip install 'porelab[cluster]'") \
                from None
        self.n_workers, self.gpu, self.cluster = workers, gpu, None
        self._futures: dict[str, tuple[object, Task]] = {}
        opts = dict(cluster_options or {})
        try:
            if address:
                self.client = distributed.Client(address, timeout=opts.pop("timeout", 30))
            elif cluster == "local":
                self.cluster = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, resources={"GPU": 1} if gpu else None, **opts)
                self.client = distributed.Client(self.cluster)
            else:
                self.cluster = jobqueue_cluster(cluster, opts)
                self.cluster.adapt(minimum_jobs=workers, maximum_jobs=workers)
                self.client = distributed.Client(self.cluster)
        except ExecutorError:
            raise
        except (OSError, TimeoutError, ValueError, TypeError) as err:
            raise ExecutorError(f"dask executor: {type(err).__name__}: {err}") from None
        self._wait, self._first = distributed.wait, "FIRST_COMPLETED"

    def submit(self, task: Task) -> bool:
        if task.design_id in self._futures:
            return False
        fut = self.client.submit(run_task, on_gpu(task) if self.gpu else task,
                                 key=f"porelab-{task.design_id}-a{task.attempt}", pure=False,
                                 resources={"GPU": 1} if self.gpu else None)
        self._futures[task.design_id] = (fut, task)
        return True

    def wait(self, timeout: float | None = None) -> list[TaskResult]:
        if not self._futures:
            return []
        try:
            self._wait([f for f, _ in self._futures.values()], timeout=timeout, return_when=self._first)
        except TimeoutError:
            pass
        out = []
        for did, (fut, task) in list(self._futures.items()):
            if not fut.done():
                continue
            del self._futures[did]
            try:
                out.append(fut.result())
            except Exception as err:  # KilledWorker (lost worker, after Dask's own retries), cancelled, ...
                out.append(TaskResult(did, task.attempt, None, f"{type(err).__name__}: {err}"[:500], 0.0, "?"))
            fut.release()
        return out

    def close(self) -> None:
        for fut, _ in self._futures.values():
            fut.cancel()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def on_gpu(task: Task) -> Task:
    """The task as a GPU worker runs it: MD on OpenMM's CUDA platform unless its settings name a platform (the
    platform is no part of the oracle's identity, so its measurements answer the same question)."""
    settings = task.oracle.get("settings") or {}
    if task.oracle["kind"] != "md" or settings.get("platform"):
        return task
    return dataclasses.replace(task, oracle={**task.oracle, "settings": {**settings, "platform": "CUDA"}})


def jobqueue_options(spec, job_name: str = "porelab-worker", log_directory: str | None = None) -> dict:
    """The SLURMCluster / PBSCluster keywords of an executor spec (campaign.study.ExecutorSpec): each job one
    single-threaded worker (one simulation at a time) with the spec's cores as its simulation's threads, memory,
    walltime, partition (queue), account and job_extra; its output in `log_directory` (None: the scheduler's
    default, the working directory); the scheduler's dashboard off; with gpu, the worker offers
    GPU=1 and a Slurm job asks for --gres=gpu:1 (unless job_extra names its own --gres/--gpus). `cluster_options`
    come last: any other dask-jobqueue keyword (scheduler_options merged)."""
    directives = list(spec.job_extra)
    opts = {"cores": 1, "processes": 1, "memory": spec.memory, "walltime": spec.walltime, "queue": spec.partition,
            "account": spec.account, "job_name": job_name, "log_directory": log_directory,
            "scheduler_options": {"dashboard_address": None},
            "job_script_prologue": [f"export OMP_NUM_THREADS={spec.cores} OPENMM_CPU_THREADS={spec.cores}"]}
    if spec.cluster == "slurm":
        opts["job_cpu"] = spec.cores
    else:  # PBS sizes the job by its resource_spec
        opts["resource_spec"] = f"select=1:ncpus={spec.cores}:mem={spec.memory}"
    if spec.gpu:
        opts["worker_extra_args"] = ["--resources", "GPU=1"]
        if spec.cluster == "slurm" and not any(d.startswith(("--gres", "--gpus", "-G")) for d in directives):
            directives.append("--gres=gpu:1")
    opts["job_extra_directives"] = directives
    extra = dict(spec.cluster_options)
    opts["scheduler_options"] |= extra.pop("scheduler_options", {})
    return opts | extra


def jobqueue_cluster(cluster: str, options: dict):
    """A dask-jobqueue SLURMCluster / PBSCluster of `options`, not scaled yet: no job submitted (`.job_script()`
    shows a worker job); ExecutorError naming porelab[cluster] when dask-jobqueue is not installed."""
    try:  # the optional extra `cluster`
        import dask_jobqueue
    except ImportError:
        raise ExecutorError(f"cluster: {cluster} needs dask-jobqueue, which is not installed: pip install "
                            "'porelab[cluster]'") from None
    return {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[cluster](**options)


def make_executor(spec, job_name: str = "porelab-worker", log_directory: str | None = None):
    """The executor of an executor spec (campaign.study.ExecutorSpec); Slurm/PBS jobs are named `job_name` and
    write their output to `log_directory`."""
    if spec.kind == "local":
        return LocalExecutor(spec.workers, 1)
    if spec.kind == "dask":
        jobs = not spec.address and spec.cluster in ("slurm", "pbs")
        options = jobqueue_options(spec, job_name, log_directory) if jobs else spec.cluster_options
        return DaskExecutor(spec.workers, spec.address, spec.cluster, options, spec.gpu)
    raise ExecutorError(f"executor kind {spec.kind!r} is unknown; choose local or dask")
