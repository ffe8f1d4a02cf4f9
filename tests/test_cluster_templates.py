"""The shipped configs, the SLURM torchrun template and the dask-jobqueue example, rendered and
checked without a cluster: shell syntax, torchrun's own parser, and every option they pass
accepted by the command's click parser."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from evaluate.cli import sweep
from evaluate.tasks import TASKS
from maskgen.cli.adapt import adapt
from maskgen.cli.options import read_config
from maskgen.cli.run import run as maskgen_run
from pretrain.cli import check_run_options
from pretrain.cli import run as pretrain_run

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "real-data"
SBATCH = REPO / "examples" / "slurm_pretrain_torchrun.sbatch"
COMMANDS = {"adapt.toml": adapt, "run-butus.toml": maskgen_run, "run-corpus.toml": maskgen_run,
            "pretrain.toml": pretrain_run,
            "sweep.toml": sweep}


def _check_values(path: Path, command: click.Command) -> dict:
    """Every key is an option of ``command`` and every value converts to its type (a path is
    not required to exist here: the data are not on this machine)."""
    values = read_config(path, command)
    ctx = click.Context(command)
    params = {p.name: p for p in command.params}
    for name, value in values.items():
        param = params[name]
        if isinstance(param.type, click.Path):
            assert all(isinstance(v, str) for v in (value if isinstance(value, list) else [value])), name
        else:
            param.type_cast_value(ctx, value)
    return values


def test_real_data_recipe_configs_are_accepted_and_complete():
    assert sorted(p.name for p in CONFIGS.glob("*.toml")) == sorted(COMMANDS)
    values = {name: _check_values(CONFIGS / name, command) for name, command in COMMANDS.items()}
    assert len(values["adapt.toml"]["roots"]) == len(values["adapt.toml"]["datasets"]) == 3
    # every downstream dataset the sweep evaluates has its root
    roots = dict(v.split("=", 1) for v in values["sweep.toml"]["dataset_root"])
    assert set(roots) == {t.dataset for t in TASKS.values()}
    # the chain: adapt -> run -> pretrain -> sweep, each with its own --out
    assert values["run-butus.toml"]["adapt_dir"] == values["adapt.toml"]["out"]
    assert values["pretrain.toml"]["store"] == values["run-corpus.toml"]["out"]
    assert list(values["run-corpus.toml"]["datasets"]) == ["butus", "camus"]
    outs = [v.get("out") or v.get("out_dir") for v in values.values()]
    assert len(set(outs)) == len(outs), outs
    text = (REPO / "README.md").read_text()
    for name in COMMANDS:
        assert f"configs/real-data/{name}" in text, name


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(0o755)


def _render_sbatch(tmp_path: Path, out: Path, store: Path, *extra: str) -> list[str]:
    """Run the batch script with stand-ins for scontrol, srun and torchrun; return torchrun's argv."""
    bin_dir, venv = tmp_path / "bin", tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(exist_ok=True)
    argv_file = tmp_path / "torchrun.argv"
    _stub(bin_dir, "scontrol", 'printf "node-a\\nnode-b\\n"')
    _stub(bin_dir, "srun", 'while [[ "$1" == --* ]]; do shift; done; exec "$@"')
    _stub(venv / "bin", "torchrun", f'printf "%s\\0" "$@" > "{argv_file}"')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "VENV": str(venv), "STORE": str(store),
           "OUT": str(out), "SLURM_JOB_NODELIST": "node-[a-b]", "SLURM_NNODES": "2", "SLURM_JOB_ID": "42",
           "SLURM_CPUS_PER_TASK": "32"}
    done = subprocess.run(["bash", str(SBATCH), *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return argv_file.read_text().split("\0")[:-1]


def test_slurm_torchrun_template(tmp_path):
    assert subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True).returncode == 0
    text = SBATCH.read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --gpus-per-node=4" in text
    store, out = tmp_path / "store", tmp_path / "run"
    store.mkdir()
    argv = _render_sbatch(tmp_path, out, store)
    from torch.distributed.run import get_args_parser

    launch = get_args_parser().parse_args(argv)  # torchrun's own parser
    assert (launch.nnodes, launch.nproc_per_node, launch.rdzv_backend) == ("2", "4", "c10d")
    assert launch.rdzv_endpoint == "node-a:29500" and launch.rdzv_id == "42" and launch.module
    assert launch.training_script == "pretrain.cli" and launch.training_script_args[0] == "run"
    options = check_run_options(launch.training_script_args[1:])  # pretrain run's click parser + config
    assert options["epochs"] == 300 and options["batch_size"] * 2 * 4 == 192
    assert "--resume" not in argv
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"")
    assert _render_sbatch(tmp_path, out, store)[-1] == "--resume"  # resubmitting continues the run
    argv = _render_sbatch(tmp_path, out, store, "--arch", "resnet50")  # script arguments reach pretrain run
    options = check_run_options(get_args_parser().parse_args(argv).training_script_args[1:])
    assert options["arch"] == "resnet50"


def _example():
    spec = importlib.util.spec_from_file_location("dask_jobqueue_maskgen", REPO / "examples" / "dask_jobqueue_maskgen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _FakeCluster:
    made: list = []

    def __init__(self, **kwargs):
        self.kwargs, self.scheduler_address, self.jobs, self.closed = kwargs, "tcp://10.0.0.1:8786", None, False
        _FakeCluster.made.append(self)

    def scale(self, jobs):
        self.jobs = jobs

    def job_script(self):
        return "#!/usr/bin/env bash\n"

    def close(self):
        self.closed = True


def test_dask_jobqueue_example_passes_options_maskgen_accepts(tmp_path):
    example = _example()
    fake = type(sys)("dask_jobqueue")
    fake.SLURMCluster = fake.PBSCluster = _FakeCluster
    adapt_dir = tmp_path / "lpsam"
    adapt_dir.mkdir()
    seen = []

    def runner(command):
        seen.append(command)
        return subprocess.CompletedProcess(command, 0)

    code = example.main(["--system", "pbs", "--jobs", "3", "--queue", "gpuq", "--", "--config",
                         str(CONFIGS / "run-butus.toml"), "--checkpoint", str(adapt_dir), "--out",
                         str(tmp_path / "store")], module=fake, runner=runner)
    assert code == 0
    cluster = _FakeCluster.made[-1]
    assert cluster.jobs == 3 and cluster.closed and cluster.kwargs["queue"] == "gpuq"
    assert "ngpus=1" in cluster.kwargs["resource_spec"]
    (command,) = seen
    assert command[1] == "run" and command[-2:] == ["--scheduler", "tcp://10.0.0.1:8786"]
    ctx = maskgen_run.make_context("run", command[2:])  # maskgen run's click parser + the config
    assert ctx.params["scheduler"] == "tcp://10.0.0.1:8786" and ctx.params["datasets"] == ("butus",)
    assert ctx.params["adapt_dir"] == str(adapt_dir)
    with pytest.raises(SystemExit, match="--jobs"):
        example.main(["--", "--workers", "2"], module=fake, runner=runner)


@pytest.mark.parametrize("system,directive", [("slurm", "#SBATCH --gpus=1"), ("pbs", "ngpus=1")])
def test_dask_jobqueue_renders_valid_job_scripts(system, directive):
    pytest.importorskip("dask_jobqueue")
    example = _example()
    cluster = example.make_cluster(system, "gpu", None, 8, "32GB", "01:00:00", sys.executable)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert directive in script and "--nthreads 1" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True).returncode == 0
