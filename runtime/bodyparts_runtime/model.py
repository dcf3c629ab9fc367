"""An exported bodyparts part model run with ONNX Runtime, its outputs made into
``tools/demo.py --json``'s record in numpy.

The record (one image)::

    {"file_name": str or None, "height": H, "width": W, "score_threshold": float,
     "part_taxonomy": str, "part_labels": {part name: label}, "keypoint_names": [str] * K,
     "persons": [  # score >= threshold, best first
        {"box_xyxy": [x0, y0, x1, y1], "score": float, "category": int,
         "keypoints": [[x, y, score]] * K or None,
         "silhouette": COCO RLE or None, "parts": {part name: COCO RLE} or None}]}
"""

import json
import os
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np
import onnxruntime as ort

from .postprocess import decode_keypoints, paste_mask, paste_parts, resize, rle_encode
from .tracking import id_color

__all__ = ["Runtime", "ExportFolderError"]

INFO_FILE = "export_info.json"


class ExportFolderError(ValueError):
    """An export folder this runtime cannot run (the message says why)."""


class Runtime:
    """``Runtime(export_dir)(image_bgr, threshold)`` -> the JSON record (module docstring).

    Args:
        directory: a ``tools/export_model.py --format onnx`` output folder (``model.onnx``,
            ``export_info.json``) of a part model (R-CNN kind).
        num_threads: ONNX Runtime intra-op threads (default: its own choice).
        providers: ONNX Runtime execution providers (default: CPU).
    """

    def __init__(
        self,
        directory: str,
        *,
        num_threads: Optional[int] = None,
        providers: Optional[List[str]] = None,
    ):
        info_path = os.path.join(directory, INFO_FILE)
        if not os.path.isfile(info_path):
            raise ExportFolderError(f"{directory}: no {INFO_FILE}; not a bodyparts export folder")
        try:
            with open(info_path) as f:
                info = json.load(f)
        except (OSError, ValueError) as e:
            raise ExportFolderError(f"{info_path}: not readable as JSON ({e})") from None
        if not isinstance(info, dict):
            raise ExportFolderError(f"{info_path}: not an export description (a JSON object)")
        missing = [
            k for k in ("file", "outputs", "min_size_test", "max_size_test") if k not in info
        ]
        if missing:
            raise ExportFolderError(f"{info_path}: no {', '.join(missing)}; not a bodyparts export")
        if info.get("format") != "onnx":
            raise ExportFolderError(
                f"{info_path}: format {info.get('format')!r}; this runtime runs ONNX exports "
                "(tools/export_model.py --format onnx)"
            )
        if info.get("kind") != "instances":
            raise ExportFolderError(
                f"{info_path}: a {info.get('kind')!r} model; this runtime runs the per-person part "
                "models (R-CNN kind)"
            )
        self.info = info
        self.output_names = [o["name"] for o in info["outputs"]]
        labels = list(info.get("part_labels") or [])
        self.part_names = labels[1:]  # label 0 is the background
        self.keypoint_names = list(info.get("keypoint_names") or [])
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        model_path = os.path.join(directory, info["file"])
        if not os.path.isfile(model_path):
            raise ExportFolderError(f"{model_path}: no such file (named by {info_path})")
        try:
            self.session = ort.InferenceSession(
                model_path, options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as e:  # ONNX Runtime's own exceptions: a corrupt or foreign file
            raise ExportFolderError(f"{model_path}: ONNX Runtime cannot load it ({e})") from None

    def raw(self, image_bgr: np.ndarray) -> Dict[str, np.ndarray]:
        """The model's named outputs for a uint8 BGR (H, W, 3) image, in the coordinates of the
        resized model input, plus ``input_size`` (h, w)."""
        image = np.asarray(image_bgr)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ExportFolderError(
                f"expected a uint8 (H, W, 3) BGR image, got {image.dtype} {image.shape}"
            )
        if self.info.get("input_format", "BGR") == "RGB":
            image = image[:, :, ::-1]
        resized = resize(image, self.info["min_size_test"], self.info["max_size_test"])
        tensor = np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32)
        outputs = dict(zip(self.output_names, self.session.run(None, {"image": tensor})))
        outputs["input_size"] = np.asarray(resized.shape[:2])
        return outputs

    def persons(self, image_bgr: np.ndarray, threshold: float = 0.5) -> Dict[str, Any]:
        """The persons with ``score >= threshold`` in the original image's pixels, as Detectron2's
        ``detector_postprocess`` makes them (boxes scaled and clipped, empty boxes dropped,
        keypoints scaled): ``boxes`` (R, 4), ``scores`` (R,), ``classes`` (R,), ``keypoints``
        (R, K, 3) or None, ``parts`` [(uint8 labels, y0, x0) or None] * R or None,
        ``silhouettes`` [(bool mask, y0, x0)] * R or None."""
        height, width = image_bgr.shape[:2]
        out = self.raw(image_bgr)
        h, w = (int(v) for v in out["input_size"])
        boxes = out["boxes"].astype(np.float32)
        keypoints = out.get("keypoints")
        if keypoints is None and "keypoint_heatmaps" in out:
            keypoints = decode_keypoints(out["keypoint_heatmaps"], boxes)
        scale_x, scale_y = np.float32(width / w), np.float32(height / h)
        boxes = boxes * np.array([scale_x, scale_y, scale_x, scale_y], dtype=np.float32)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        keep = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)
        keep &= out["scores"] >= threshold
        index = np.flatnonzero(keep)
        result: Dict[str, Any] = {
            "height": height,
            "width": width,
            "boxes": boxes[index],
            "scores": out["scores"][index].astype(np.float32),
            "classes": out["classes"][index] if "classes" in out else np.zeros(len(index), int),
            "keypoints": None,
            "parts": None,
            "silhouettes": None,
        }
        if keypoints is not None:
            kps = np.array(keypoints[index], dtype=np.float32)
            kps[:, :, 0] *= scale_x
            kps[:, :, 1] *= scale_y
            result["keypoints"] = kps
        if "part_probs" in out:
            probs = out["part_probs"][index]
            result["parts"] = [
                paste_parts(p, b, height, width) for p, b in zip(probs, result["boxes"])
            ]
        if "silhouettes" in out:
            masks = out["silhouettes"][index][:, 0]
            result["silhouettes"] = [
                paste_mask(m, b, height, width) for m, b in zip(masks, result["boxes"])
            ]
        return result

    def __call__(
        self, image_bgr: np.ndarray, threshold: float = 0.5, file_name: Optional[str] = None
    ) -> Dict[str, Any]:
        """The JSON record of one image (module docstring), as ``tools/demo.py --json``."""
        return self.record(self.persons(image_bgr, threshold), threshold, file_name)

    def record(
        self, found: Dict[str, Any], threshold: float, file_name: Optional[str] = None
    ) -> Dict[str, Any]:
        """The JSON record of :meth:`persons`' result (the model is not run again)."""
        height, width = found["height"], found["width"]
        persons = []
        for i in range(len(found["scores"])):
            person: Dict[str, Any] = {
                "box_xyxy": [round(float(v), 2) for v in found["boxes"][i]],
                "score": float(found["scores"][i]),
                "category": int(found["classes"][i]),
                "keypoints": None,
                "silhouette": None,
                "parts": None,
            }
            if found["keypoints"] is not None:
                kps = found["keypoints"][i].tolist()
                person["keypoints"] = [[round(float(v), 2) for v in kp] for kp in kps]
            if found["silhouettes"] is not None:
                person["silhouette"] = rle_encode(*found["silhouettes"][i], height, width)
            if found["parts"] is not None:
                person["parts"] = {}
                pasted = found["parts"][i]
                if pasted is not None:
                    labels, y0, x0 = pasted
                    for k in np.unique(labels).tolist():
                        if 0 < k <= len(self.part_names):
                            crop = labels == k
                            person["parts"][self.part_names[k - 1]] = rle_encode(
                                crop, y0, x0, height, width
                            )
            persons.append(person)
        return {
            "file_name": file_name,
            "height": int(height),
            "width": int(width),
            "score_threshold": threshold,
            "part_taxonomy": self.info.get("part_taxonomy"),
            "part_labels": {name: k + 1 for k, name in enumerate(self.part_names)},
            "keypoint_names": self.keypoint_names,
            "persons": persons,
        }

    def part_map(self, found: Dict[str, Any]) -> np.ndarray:
        """uint8 (H, W) image-level part map of :meth:`persons`' result: the persons pasted in
        ascending score order (a higher score wins), only part labels overwriting."""
        out = np.zeros((found["height"], found["width"]), dtype=np.uint8)
        order = np.argsort(found["scores"], kind="stable")
        for i in order.tolist():
            pasted = (found["parts"] or [None] * len(found["scores"]))[i]
            if pasted is None:
                continue
            labels, y0, x0 = pasted
            window = out[y0 : y0 + labels.shape[0], x0 : x0 + labels.shape[1]]
            np.copyto(window, labels, where=labels > 0)
        return out

    def draw(
        self,
        image_bgr: np.ndarray,
        threshold: float = 0.5,
        found: Optional[Dict[str, Any]] = None,
        ids: Optional[Sequence[Optional[int]]] = None,
    ) -> np.ndarray:
        """The image with the part map blended in (a colour per label), boxes and keypoints;
        ``found``: :meth:`persons`' result for this image (default: the model is run); ``ids``:
        the persons' ids across frames (:class:`bodyparts_runtime.tracking.PersonTracker`; None or
        -1: none yet), drawn as ``#id`` with the box in the id's colour."""
        if found is None:
            found = self.persons(image_bgr, threshold)
        labels = self.part_map(found)
        rng = np.random.default_rng(0)
        colours = rng.integers(60, 256, size=(256, 3)).astype(np.uint8)
        colours[0] = 0
        out = image_bgr.copy()
        painted = labels > 0
        out[painted] = (0.5 * out[painted] + 0.5 * colours[labels[painted]]).astype(np.uint8)
        if ids is not None and len(ids) != len(found["boxes"]):
            raise ValueError(f"{len(ids)} ids for {len(found['boxes'])} persons")
        for i, box in enumerate(found["boxes"]):
            x0, y0, x1, y1 = (int(round(float(v))) for v in box)
            colour = (0, 255, 0)
            if ids is not None:
                track_id = -1 if ids[i] is None else int(ids[i])
                colour = id_color(track_id)[::-1]  # BGR
                if track_id > 0:
                    origin = (x0 + 2, max(y0 - 3, 10))
                    cv2.putText(out, f"#{track_id}", origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour)
            cv2.rectangle(out, (x0, y0), (x1, y1), colour, 1)
            if found["keypoints"] is not None:
                for x, y, _ in found["keypoints"][i]:
                    centre = (int(round(float(x))), int(round(float(y))))
                    cv2.circle(out, centre, 2, (0, 0, 255), -1)
        return out
