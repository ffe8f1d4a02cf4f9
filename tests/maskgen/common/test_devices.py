"""The one device policy (maskgen.common.devices) with the GPU count faked: which device rank or
worker i gets, ``--device cuda:N`` validation, and its users (pretrain ranks + DDP, maskgen
workers, evaluate workers)."""

import pytest
import torch

import maskgen.common.devices as devices
import maskgen.generate.inference


@pytest.fixture
def two_gpus(monkeypatch):
    """torch sees two CUDA devices; ``set_device`` calls are recorded instead of made."""
    claimed = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: claimed.append(torch.device(device)))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    return claimed


def test_device_names_are_checked_against_the_gpus_present(two_gpus):
    assert devices.resolve_device("auto") == torch.device("cuda", 0)
    assert devices.resolve_device("cuda") == torch.device("cuda", 0)
    assert devices.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"'cuda:2'.*sees 2 cuda device\(s\) \(cuda:0..cuda:1\)"):
        devices.resolve_device("cuda:2")
    with pytest.raises(ValueError, match="not a device torch knows"):
        devices.resolve_device("gpu0")


def test_without_cuda_auto_is_the_cpu_and_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        devices.resolve_device("cuda:0")
    assert devices.slot_devices("cpu", 5) == ["cpu"] * 5  # the CPU is shared by every slot


def test_slot_i_gets_gpu_i_and_more_slots_than_gpus_is_an_error(two_gpus):
    assert devices.slot_devices("auto", 2) == ["cuda:0", "cuda:1"]
    assert devices.slot_device("cuda:1", 0) == torch.device("cuda", 1)  # the index is the first GPU
    with pytest.raises(ValueError, match=r"3 --workers need 3 cuda device\(s\) from cuda:0 on.*sees 2.*at most 2 --workers"):
        devices.check_slots("auto", 3, "--workers")
    with pytest.raises(ValueError, match="at most 1"):
        devices.slot_devices("cuda:1", 2)
    with pytest.raises(ValueError, match="sees 2"):
        devices.slot_device("auto", 2)


def test_sharing_a_gpu_is_only_ever_explicit(two_gpus):
    assert devices.slot_devices("auto", 4, per_device=2) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    assert devices.slot_devices("cuda:1", 2, per_device=2) == ["cuda:1", "cuda:1"]
    with pytest.raises(ValueError, match=r"5 --workers need 3 cuda device\(s\) \(at most 2 per device\)"):
        devices.check_slots("auto", 5, "--workers", per_device=2)


def test_torchrun_rank_1_lands_on_cuda_1_set_before_the_group(two_gpus, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert devices.rank_device("auto") == torch.device("cuda", 1)
    assert two_gpus == [torch.device("cuda", 1)]
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert devices.rank_device("auto") == torch.device("cuda", 0)


def test_more_ranks_than_gpus_fails_on_every_rank(two_gpus, monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    for rank in ("0", "2"):  # rank 0 has a GPU, but would wait for rank 2 forever
        monkeypatch.setenv("LOCAL_RANK", rank)
        with pytest.raises(ValueError, match=r"3 ranks per machine need 3 cuda device\(s\)"):
            devices.rank_device("auto")
    assert two_gpus == []


def test_ddp_device_ids_follow_the_rank(two_gpus, monkeypatch):
    from pretrain import distributed

    seen = {}

    def fake_ddp(model, device_ids=None, find_unused_parameters=False):
        seen.update(device_ids=device_ids, find_unused=find_unused_parameters)
        return model

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", fake_ddp)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    distributed.wrap_ddp(torch.nn.Linear(2, 2), devices.rank_device("auto"), True)
    assert seen == {"device_ids": [1], "find_unused": True}
    distributed.wrap_ddp(torch.nn.Linear(2, 2), torch.device("cpu"))
    assert seen["device_ids"] is None


def test_pretrain_picks_the_rank_device_before_joining_the_group(two_gpus, monkeypatch, tmp_path):
    import pretrain.train as train
    from pretrain import distributed

    calls = []

    class Joined(Exception):
        pass

    def fake_init(device_type):
        calls.append(("init", device_type, list(two_gpus)))
        raise Joined

    monkeypatch.setattr(distributed, "init_from_env", fake_init)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(Joined):
        train.run(tmp_path / "no-store", tmp_path / "out", train.RunConfig(device="auto"))
    assert calls == [("init", "cuda", [torch.device("cuda", 1)])]  # set_device came first
    assert not (tmp_path / "out").exists()


def test_maskgen_worker_slot_gets_its_gpu(two_gpus, monkeypatch):
    monkeypatch.setattr(maskgen.generate.inference, "worker_slot", lambda: 1)
    assert maskgen.generate.inference.worker_device("auto") == torch.device("cuda", 1)
    assert two_gpus == [torch.device("cuda", 1)]
    assert maskgen.generate.inference.worker_device("auto", per_device=2) == torch.device("cuda", 0)
    monkeypatch.setattr(maskgen.generate.inference, "worker_slot", lambda: 2)
    with pytest.raises(ValueError, match="sees 2"):
        maskgen.generate.inference.worker_device("auto")


def test_evaluate_pool_hands_worker_i_gpu_i(two_gpus, monkeypatch):
    import evaluate.parallel as parallel

    handed = []

    class FakeExecutor:
        def __init__(self, workers, mp_context, initializer, initargs):
            queue = initargs[5]  # (data, folds, backbones, profile, threads, devices, ...)
            handed.extend(queue.get(timeout=5) for _ in range(workers))

        def shutdown(self, **kwargs):
            pass

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", FakeExecutor)
    parallel.CellPool(None, None, [], None, torch.device("cuda", 0), 2, 1)
    assert handed == ["cuda:0", "cuda:1"]
    with pytest.raises(ValueError, match="3 --workers"):
        parallel.CellPool(None, None, [], None, torch.device("cuda", 0), 3, 1)


def test_commands_refuse_a_missing_gpu_before_writing(two_gpus, tmp_path):
    from click.testing import CliRunner

    from evaluate.cli import main as evaluate_main
    from maskgen.cli.main import main as maskgen_main
    from pretrain.cli import main as pretrain_main

    adapt = tmp_path / "lpsam"
    adapt.mkdir()
    runner = CliRunner()
    cases = [
        (maskgen_main, ["run", "--dataset", "butus", "--root", str(tmp_path), "--checkpoint", str(adapt),
                        "--out", str(tmp_path / "store"), "--device", "cuda:9"], "store"),
        (maskgen_main, ["run", "--dataset", "butus", "--root", str(tmp_path), "--checkpoint", str(adapt),
                        "--out", str(tmp_path / "store"), "--workers", "3"], "store"),
        (maskgen_main, ["run", "--dataset", "butus", "--root", str(tmp_path), "--checkpoint", str(adapt),
                        "--out", str(tmp_path / "store"), "--workers", "5", "--workers-per-gpu", "2"], "store"),
        (pretrain_main, ["run", "--store", str(tmp_path), "--out", str(tmp_path / "pre"), "--device", "cuda:9"],
         "pre"),
        (evaluate_main, ["sweep", "--root", str(tmp_path), "--out", str(tmp_path / "eval"), "--device", "cuda:2"],
         "eval"),
    ]
    for main, args, out in cases:
        result = runner.invoke(main, args)
        assert result.exit_code != 0, result.output
        assert "torch sees 2" in result.output, result.output
        assert not (tmp_path / out).exists()
