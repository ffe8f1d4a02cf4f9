"""LP-SAM: SAM + adapters + latent prompt engine (the only package importing segment_anything).

Public API: ``load_predictor(adapt_dir, device) -> MaskPredictor``; ``build_lpsam``,
``get_config``; ``maskgen.lpsam.testing.make_random_adapt_dir`` for tests elsewhere.
"""

from maskgen.lpsam.config import CONFIGS, LPSAMConfig, get_config
from maskgen.lpsam.model import LPSAM, build_lpsam, parameter_counts
from maskgen.lpsam.predictor import MaskPredictor, load_predictor

__all__ = ["CONFIGS", "LPSAM", "LPSAMConfig", "MaskPredictor", "build_lpsam", "get_config", "load_predictor",
           "parameter_counts"]
