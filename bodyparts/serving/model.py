"""The model a server runs: Detectron2's ``DefaultPredictor`` plus a batched call."""

from typing import Any, Dict, List

import numpy as np
import torch
from detectron2.engine import DefaultPredictor

__all__ = ["BatchPredictor"]


class BatchPredictor(DefaultPredictor):
    """``DefaultPredictor`` (``predictor(image_bgr) -> outputs``: resize to
    ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``, ``INPUT.FORMAT``, outputs at the image's size) with
    :meth:`predict_batch`, which gives the model several images in one forward pass (the server's
    micro-batching, ``--max-batch``)."""

    def _model_input(self, image_bgr: np.ndarray) -> Dict[str, Any]:
        image = image_bgr[:, :, ::-1] if self.input_format == "RGB" else image_bgr
        height, width = image.shape[:2]
        resized = self.aug.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
        return {"image": tensor.to(self.cfg.MODEL.DEVICE), "height": height, "width": width}

    def predict_batch(self, images_bgr: List[np.ndarray]) -> List[Dict[str, Any]]:
        """Outputs of each uint8 (H_i, W_i, 3) BGR image, in order (the images are padded to one
        batch as in training; a single image gives ``DefaultPredictor``'s result)."""
        with torch.no_grad():
            return self.model([self._model_input(image) for image in images_bgr])
