"""The model a server runs: :class:`bodyparts.utils.predictor.Predictor` plus a batched call."""

from typing import Any, Dict, List

import numpy as np
import torch

from ..utils.predictor import Predictor

__all__ = ["BatchPredictor"]


class BatchPredictor(Predictor):
    """:class:`~bodyparts.utils.predictor.Predictor` (``predictor(image_bgr) -> outputs``: resize to
    ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``, ``INPUT.FORMAT``, outputs at the image's size) with
    :meth:`predict_batch`, which gives the model several images in one forward pass (the server's
    micro-batching, ``--max-batch``)."""

    def predict_batch(self, images_bgr: List[np.ndarray]) -> List[Dict[str, Any]]:
        """Outputs of each uint8 (H_i, W_i, 3) BGR image, in order (the images are padded to one
        batch as in training; a single image gives ``DefaultPredictor``'s result)."""
        with torch.no_grad():
            return self.model([self.model_input(image) for image in images_bgr])
