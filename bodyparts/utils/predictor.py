"""Running a model on images: one preprocessing function for every path (the demo, the server,
export), and Detectron2's ``DefaultPredictor`` with the weights loaded by
:func:`bodyparts.checkpoint.load_weights` (no code run from the file; an error when the weights
leave parts of the model uninitialised).

Shapes: H x W = the image, h x w = resized (shortest edge ``INPUT.MIN_SIZE_TEST``, longest at most
``INPUT.MAX_SIZE_TEST``), as Detectron2's ``DefaultPredictor`` does.
"""

import contextlib
from typing import Any, Dict, Iterator, Optional

import detectron2.data.transforms as T
import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.engine import DefaultPredictor

from ..checkpoint import load_weights

__all__ = ["Predictor", "model_input", "test_resize", "seeded_if_untrained"]


def test_resize(cfg: CfgNode) -> T.Augmentation:
    """The test-time resize of ``DefaultPredictor``: ``ResizeShortestEdge`` to
    ``INPUT.MIN_SIZE_TEST``, at most ``INPUT.MAX_SIZE_TEST``."""
    return T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)


def model_input(
    image: np.ndarray, resize: T.Augmentation, *, device: Optional[str] = None
) -> Dict[str, Any]:
    """One image as the model's input dict.

    Args:
        image: uint8 (H, W, 3) in the model's channel order (``INPUT.FORMAT``).
        resize: :func:`test_resize`.
        device: where to put the tensor (None: stays on the CPU).
    Returns:
        ``{"image": float32 (3, h, w), "height": H, "width": W}``: outputs come back at H x W.
    """
    height, width = image.shape[:2]
    resized = resize.get_transform(image).apply_image(image)
    tensor = torch.as_tensor(np.ascontiguousarray(resized.astype("float32").transpose(2, 0, 1)))
    if device is not None:
        tensor = tensor.to(device)
    return {"image": tensor, "height": height, "width": width}


@contextlib.contextmanager
def seeded_if_untrained(cfg: CfgNode, seed: int = 0) -> Iterator[None]:
    """With ``MODEL.WEIGHTS ""`` (an untrained model, on purpose), the random weights the model is
    built with inside this context are the same each time (torch seeded with ``seed``); the
    global random state is restored afterwards. With weights: nothing."""
    if cfg.MODEL.WEIGHTS:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Predictor(DefaultPredictor):
    """``Predictor(cfg)(image_bgr) -> outputs``, as ``DefaultPredictor`` (resize to
    ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``, ``INPUT.FORMAT``, outputs at the image's size),
    preprocessing with :func:`model_input`.

    Args:
        cfg: the model's config; ``MODEL.WEIGHTS`` is loaded safely ("" keeps random weights).
        allow_partial_weights: accept weights that leave modules uninitialised (a warning).

    Raises:
        bodyparts.checkpoint.WeightsFileError, PartialWeightsError.
    """

    def __init__(self, cfg: CfgNode, *, allow_partial_weights: bool = False):
        without_weights = cfg.clone()
        without_weights.defrost()
        without_weights.MODEL.WEIGHTS = ""  # DefaultPredictor's own (unrestricted) load: nothing
        without_weights.freeze()
        with seeded_if_untrained(cfg):
            super().__init__(without_weights)
        self.cfg = cfg.clone()
        self.aug = test_resize(cfg)
        load_weights(self.model, cfg.MODEL.WEIGHTS, allow_partial=allow_partial_weights)

    def model_input(self, image_bgr: np.ndarray) -> Dict[str, Any]:
        """The model's input dict for a uint8 (H, W, 3) BGR image (:func:`model_input`)."""
        image = image_bgr[:, :, ::-1] if self.input_format == "RGB" else image_bgr
        return model_input(image, self.aug, device=self.cfg.MODEL.DEVICE)

    def __call__(self, image_bgr: np.ndarray) -> Dict[str, Any]:
        """The model's outputs for a uint8 (H, W, 3) BGR image, at its size."""
        with torch.no_grad():
            return self.model([self.model_input(image_bgr)])[0]
