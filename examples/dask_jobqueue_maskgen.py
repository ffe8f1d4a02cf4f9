"""``maskgen run`` on a SLURM or PBS cluster through dask-jobqueue (``pip install -e '.[cluster]'``).

One batch job per GPU, each a dask worker with one process and one thread; ``maskgen run
--scheduler ADDRESS`` then spreads the store's chunk-aligned work units over them. Run it on a
login node from the repository root, e.g.:

    python examples/dask_jobqueue_maskgen.py --system slurm --jobs 8 --queue gpu \\
        -- --config configs/real-data/run-butus.toml

Everything after ``--`` goes to ``maskgen run`` unchanged (``--workers`` is not used with a
scheduler). The paths (dataset root, ``--checkpoint``, ``--out``) must be on a file system the
compute nodes share. An interrupted job is resumed by running the same command again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys


def cluster_options(system: str, cores: int, memory: str) -> tuple[str, dict]:
    """(dask-jobqueue class name, its resource options): one job = one GPU, ``cores`` CPU cores
    and one dask worker with one thread (units on a worker run one at a time on its GPU; maskgen
    sets torch's threads itself with --threads)."""
    if system == "slurm":
        return "SLURMCluster", {"cores": 1, "processes": 1, "memory": memory, "job_cpu": cores,
                                "job_extra_directives": ["--gpus=1"]}
    if system == "pbs":
        return "PBSCluster", {"cores": 1, "processes": 1, "memory": memory,
                              "resource_spec": f"select=1:ncpus={cores}:ngpus=1:mem={memory}"}
    raise ValueError(f"--system {system!r}: choose slurm or pbs")


def make_cluster(system: str, queue: str | None, account: str | None, cores: int, memory: str,
                 walltime: str, python: str, module=None):
    """The dask-jobqueue cluster (not started jobs yet: ``cluster.scale(jobs=N)`` submits them).

    ``module``: the ``dask_jobqueue`` module (tests may pass a stand-in).
    """
    if module is None:
        import dask_jobqueue as module
    name, resources = cluster_options(system, cores, memory)
    return getattr(module, name)(queue=queue, account=account, walltime=walltime, python=python,
                                 job_script_prologue=[f"cd {os.getcwd()}"], **resources)


def maskgen_command(address: str, maskgen_args: list[str]) -> list[str]:
    """The ``maskgen run`` command line that joins the cluster at ``address``."""
    exe = shutil.which("maskgen") or os.path.join(os.path.dirname(sys.executable), "maskgen")
    return [exe, "run", *maskgen_args, "--scheduler", address]


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    cut = argv.index("--") if "--" in argv else len(argv)
    ours, theirs = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=["slurm", "pbs"], default="slurm")
    parser.add_argument("--jobs", type=int, default=4, help="GPU jobs (dask workers) to start")
    parser.add_argument("--queue", default=None, help="partition (SLURM) or queue (PBS)")
    parser.add_argument("--account", default=None)
    parser.add_argument("--cores", type=int, default=8, help="CPU cores per job (frame decoding)")
    parser.add_argument("--memory", default="32GB", help="memory per job")
    parser.add_argument("--walltime", default="04:00:00")
    return parser.parse_args(ours), theirs


def main(argv: list[str] | None = None, module=None, runner=subprocess.run) -> int:
    args, maskgen_args = parse_args(sys.argv[1:] if argv is None else argv)
    if "--workers" in maskgen_args:
        raise SystemExit("--workers is for a local cluster; with dask-jobqueue use --jobs")
    cluster = make_cluster(args.system, args.queue, args.account, args.cores, args.memory, args.walltime,
                           sys.executable, module)
    try:
        cluster.scale(jobs=args.jobs)
        print(f"dask scheduler {cluster.scheduler_address}; job script:\n{cluster.job_script()}", flush=True)
        return runner(maskgen_command(cluster.scheduler_address, maskgen_args)).returncode
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
