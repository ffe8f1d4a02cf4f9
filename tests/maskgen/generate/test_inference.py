"""Device pinning of workers and resampling to the predictor's input size."""

import numpy as np
import torch

import maskgen.generate.inference
from maskgen.generate.inference import predict_batch


def test_worker_slot_is_the_local_cluster_number_else_zero(monkeypatch):
    import distributed

    assert maskgen.generate.inference.worker_slot() == 0  # not on a dask worker
    for name, slot in ((3, 3), ("1", 1), ("SLURMCluster-7", 0)):
        monkeypatch.setattr(distributed, "get_worker", lambda name=name: type("W", (), {"name": name})())
        assert maskgen.generate.inference.worker_slot() == slot
    monkeypatch.undo()
    assert maskgen.generate.inference.worker_device("cpu") == torch.device("cpu")


def test_predict_batch_resamples_to_the_input_size_and_back(standins):
    predictor = standins.ToyPredictorSpec(input_size=32).load("cpu")
    images = np.zeros((2, 64, 64), np.uint8)
    images[:, 16:48, 16:48] = 250
    probs, scores = predict_batch(predictor, images, torch.device("cpu"), 64)
    assert probs.shape == (2, 4, 64, 64) and scores.shape == (2, 4)
    assert probs.dtype == torch.float32
    assert probs[0, 0, 32, 32] > 0.9 and probs[0, 0, 2, 2] < 0.1
