"""What a study's executor asks of Slurm and PBS, read from the worker-job script dask-jobqueue would submit
(nothing is submitted, no scheduler needed): resources from the executor's fields and their defaults, the GPU
request with MD on OpenMM's CUDA platform, misplaced fields refused, and one line when dask-jobqueue is missing."""

import copy
import json
import sys

import pytest
from al_helpers import SMALL, write_study
from typer.testing import CliRunner

from porelab.active_learning.campaign.executors import (
    ExecutorError,
    Task,
    jobqueue_cluster,
    jobqueue_options,
    make_executor,
    on_gpu,
    task_identity,
)
from porelab.active_learning.campaign.study import JOB_FIELDS, StudyError, parse_study
from porelab.active_learning.cli.main import app


def study(**executor):
    doc = copy.deepcopy(SMALL)
    doc["executor"] = executor
    return parse_study(doc)


def on(cluster: str, **fields):
    """An executor spec for `cluster`, its scheduler on loopback."""
    return study(kind="dask", cluster=cluster, cluster_options={"scheduler_options": {"host": "127.0.0.1"}},
                 **fields).executor


@pytest.fixture
def job_script():
    """job_script(spec): the lines of one worker job's script of that spec (its cluster built, never scaled)."""
    pytest.importorskip("dask_jobqueue", reason="needs dask-jobqueue (porelab[cluster])")

    def script(spec) -> list[str]:
        cluster = jobqueue_cluster(spec.cluster, jobqueue_options(spec, "porelab-test"))
        try:
            return cluster.job_script().splitlines()
        finally:
            cluster.close()

    return script


def test_a_slurm_worker_job_by_default(job_script):
    lines = job_script(on("slurm"))
    for line in ("#SBATCH -J porelab-test", "#SBATCH -n 1", "#SBATCH --cpus-per-task=1", "#SBATCH --mem=4G",
                 "#SBATCH -t 04:00:00", "export OMP_NUM_THREADS=1 OPENMM_CPU_THREADS=1"):
        assert line in lines, "\n".join(lines)
    assert not [x for x in lines if x.startswith(("#SBATCH -p", "#SBATCH -A", "#SBATCH --gres"))]
    (worker,) = [x for x in lines if "distributed.cli.dask_worker" in x]
    assert worker.startswith(sys.executable) and "--nthreads 1" in worker and "--resources" not in worker


def test_a_gpu_slurm_job_from_the_study_fields(job_script):
    spec = on("slurm", gpu=True, cores=8, memory="32GiB", walltime="1-00:00:00", partition="gpu", account="proj42",
              job_extra=["--qos=short"])
    lines = job_script(spec)
    for line in ("#SBATCH -p gpu", "#SBATCH -A proj42", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32G",
                 "#SBATCH -t 1-00:00:00", "#SBATCH --qos=short", "#SBATCH --gres=gpu:1",
                 "export OMP_NUM_THREADS=8 OPENMM_CPU_THREADS=8"):
        assert line in lines, "\n".join(lines)
    (worker,) = [x for x in lines if "distributed.cli.dask_worker" in x]
    assert "--nthreads 1" in worker and "--resources GPU=1" in worker  # one simulation per GPU at a time
    # job_extra's own GPU request replaces --gres=gpu:1
    lines = job_script(on("slurm", gpu=True, job_extra=["--gpus=a100:1"]))
    assert "#SBATCH --gpus=a100:1" in lines and not [x for x in lines if "--gres" in x]


def test_a_gpu_worker_runs_md_on_cuda_with_the_same_identity(tmp_path):
    md = Task("d", {}, {}, {"kind": "md", "settings": {"production_ps": 10.0}}, str(tmp_path))
    gpu = on_gpu(md)
    assert gpu.oracle["settings"] == {"production_ps": 10.0, "platform": "CUDA"}
    assert task_identity(gpu.oracle) == task_identity(md.oracle)  # the platform does not change the numbers
    chosen = Task("d", {}, {}, {"kind": "md", "settings": {"platform": "OpenCL"}}, str(tmp_path))
    continuum = Task("d", {}, {}, {"kind": "continuum"}, str(tmp_path))
    assert on_gpu(chosen) == chosen and on_gpu(continuum) == continuum


def test_a_pbs_worker_job(job_script):
    lines = job_script(on("pbs", cores=4, memory="8GB", partition="workq", account="proj42"))
    for line in ("#PBS -N porelab-test", "#PBS -q workq", "#PBS -A proj42", "#PBS -l select=1:ncpus=4:mem=8GB",
                 "#PBS -l walltime=04:00:00"):
        assert line in lines, "\n".join(lines)


@pytest.mark.parametrize("executor, needle", [
    ({"kind": "local", "walltime": "01:00:00"}, "executor: walltime: worker-job fields, for kind: dask with "
                                                "cluster: slurm or pbs"),
    ({"kind": "dask", "cores": 4}, "executor: cores: worker-job fields"),
    ({"kind": "dask", "cluster": "slurm", "address": "tcp://h:8786", "partition": "p"}, "partition: worker-job"),
    ({"kind": "dask", "cluster": "slurm", "cluster_options": {"queue": "gpu"}},
     "executor: cluster_options.queue: give it as executor.partition"),
    ({"kind": "dask", "cluster": "slurm", "walltime": "4h"}, "executor.walltime: '4h' is not [D-]HH:MM:SS"),
    ({"kind": "dask", "cluster": "slurm", "memory": "4 gigs"}, "executor.memory: '4 gigs' is not a size"),
    ({"kind": "dask", "cluster": "slurm", "job_extra": ["qos=short"]}, "job_extra: 'qos=short' is not a directive"),
])
def test_misplaced_or_malformed_job_fields_are_refused(executor, needle):
    with pytest.raises(StudyError) as err:
        study(**executor)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_job_fields_at_their_defaults_keep_a_study_digest():
    """A study from before the job fields still matches its campaign's frozen digest."""
    spec = study(kind="dask", cluster="slurm")
    assert not set(JOB_FIELDS) & set(json.loads(spec.canonical())["executor"])
    assert spec.digest() == study(kind="dask", cluster="slurm", walltime="04:00:00", memory="4GB").digest()
    assert spec.digest() != study(kind="dask", cluster="slurm", walltime="08:00:00").digest()


def test_slurm_without_dask_jobqueue_fails_in_one_line(tmp_path, monkeypatch):
    pytest.importorskip("distributed", reason="needs dask[distributed]")
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import dask_jobqueue raises ImportError
    with pytest.raises(ExecutorError) as err:
        make_executor(on("slurm"))
    assert str(err.value) == ("cluster: slurm needs dask-jobqueue, which is not installed: pip install "
                              "'porelab[cluster]'")
    s = write_study(tmp_path / "s.yaml", executor={"kind": "dask", "cluster": "slurm"})
    r = CliRunner().invoke(app, ["campaign", "run", str(s), "--out", str(tmp_path / "c"), "--no-tracking",
                                  "--quiet"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert r.output.startswith("error:") and len(r.output.strip().splitlines()) <= 2, r.output
    assert "porelab[cluster]" in " ".join(r.output.split())


@pytest.mark.parametrize("executor", [{"kind": "local"}, {"kind": "dask"}, {"kind": "dask", "cluster": "slurm",
                                                                            "walltime": "08:00:00", "gpu": True}])
def test_a_frozen_study_loads_again(executor):
    """A campaign directory's study.yaml spells every field out, the job fields' defaults included."""
    s = study(**executor)
    assert parse_study(s.model_dump(mode="json")).digest() == s.digest()
