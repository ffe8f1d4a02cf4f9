"""Device pinning of workers and resampling to the predictor's input size."""

import numpy as np
import torch

import maskgen.devices
import maskgen.inference
from maskgen.inference import pick_device, predict_batch


def test_worker_pins_gpu_slot_mod_count(monkeypatch):
    monkeypatch.setattr(maskgen.devices, "resolve_device", lambda name: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(maskgen.inference, "worker_slot", lambda: 6)
    assert pick_device("auto") == torch.device("cuda", 2)
    assert pick_device("cuda:0") == torch.device("cuda", 0)  # explicit index kept


def test_single_process_gets_slot_zero_and_cpu_is_untouched():
    assert maskgen.inference.worker_slot() == 0
    assert pick_device("cpu") == torch.device("cpu")


def test_predict_batch_resamples_to_the_input_size_and_back(standins):
    predictor = standins.ToyPredictorSpec(input_size=32).load("cpu")
    images = np.zeros((2, 64, 64), np.uint8)
    images[:, 16:48, 16:48] = 250
    probs, scores = predict_batch(predictor, images, torch.device("cpu"), 64)
    assert probs.shape == (2, 4, 64, 64) and scores.shape == (2, 4)
    assert probs.dtype == torch.float32
    assert probs[0, 0, 32, 32] > 0.9 and probs[0, 0, 2, 2] < 0.1
