"""Stable person ids across the frames of one stream (a video, a camera, a WebSocket client).

The association is ByteTrack (Zhang et al., ECCV 2022) as the ``trackers`` package (Roboflow)
implements it: a Kalman filter on each person's box, IoU matching of the detections to the
predicted boxes (optimal assignment), tracks kept for ``lost_frames`` frames without a detection,
so that a person hidden for a moment gets the same id back. This module only adapts it to
bodyparts' outputs (boxes and scores, or the JSON record of ``tools/demo.py --json``) and gives
each id its colour.

Ids are positive integers in order of appearance. A new person gets an id on the second frame it
is seen in (ByteTrack confirms a track before naming it); until then, and for a detection below
``threshold`` that matches no track, the id is None (-1 in :meth:`PersonTracker.update`).

``trackers`` is an optional dependency of bodyparts-runtime (``pip install trackers``); without it
:class:`PersonTracker` raises an ImportError that says so.
"""

import colorsys
from typing import Any, Dict, Optional, Tuple

import numpy as np

__all__ = ["PersonTracker", "id_color"]


class PersonTracker:
    """One stream's tracker: call :meth:`update` (or :meth:`track`) once per frame, in order.

    Args:
        threshold: smallest score that starts a new track (a lower-score detection can only
            continue one). The demo and the server pass their person score threshold.
        lost_frames: frames a track survives without a detection (at ``frame_rate``; with
            timestamps, ``lost_frames / 30`` seconds).
        frame_rate: the stream's frame rate; scales ``lost_frames``.
        min_iou: smallest IoU of a detection with a track's predicted box to continue it.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        lost_frames: int = 30,
        frame_rate: float = 30.0,
        min_iou: float = 0.1,
    ):
        try:
            import supervision
            from trackers import ByteTrackTracker
        except ImportError as e:
            raise ImportError(
                f"person tracking needs the 'trackers' package ({e}); install it with "
                "'pip install trackers' (bodyparts' set-up installs it)"
            ) from None
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if lost_frames < 0:
            raise ValueError(f"lost_frames must be >= 0, got {lost_frames}")
        self._detections = supervision.Detections
        self._tracker = ByteTrackTracker(
            lost_track_buffer=int(lost_frames),
            frame_rate=float(frame_rate),
            track_activation_threshold=float(threshold),
            minimum_consecutive_frames=1,
            minimum_iou_threshold=float(min_iou),
            high_conf_det_threshold=float(threshold),
        )
        self.frames = 0

    def update(
        self, boxes: np.ndarray, scores: np.ndarray, timestamp: Optional[float] = None
    ) -> np.ndarray:
        """Ids (int64 (N,), -1: none yet) of one frame's detections, in their order.

        Args:
            boxes: (N, 4) x0, y0, x1, y1 in the frame's pixels.
            scores: (N,) detection scores.
            timestamp: the frame's time in seconds (streams at a varying rate, e.g. a camera in
                the browser); None: frames are evenly spaced.
        """
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        if len(boxes) != len(scores):
            raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
        self.frames += 1
        index = np.arange(len(boxes))
        found = self._tracker.update(
            self._detections(xyxy=boxes, confidence=scores, data={"index": index}),
            timestamp=timestamp,
        )
        ids = np.full(len(boxes), -1, dtype=np.int64)
        if len(found):  # the tracker returns the detections reordered; "index" maps them back
            ids[np.asarray(found.data["index"], dtype=np.int64)] = found.tracker_id
        # the package counts from 0; ids shown to people count from 1
        return np.where(ids >= 0, ids + 1, -1)

    def track(self, record: Dict[str, Any], timestamp: Optional[float] = None) -> Dict[str, Any]:
        """Add ``"id"`` (int, or None: not confirmed yet) to every person of a JSON record
        (``tools/demo.py --json``, :class:`bodyparts_runtime.Runtime`); returns the record."""
        persons = record.get("persons") or []
        boxes = np.array([p["box_xyxy"] for p in persons], dtype=np.float32).reshape(-1, 4)
        scores = np.array([p["score"] for p in persons], dtype=np.float32)
        for person, track_id in zip(persons, self.update(boxes, scores, timestamp).tolist()):
            person["id"] = track_id if track_id > 0 else None
        return record

    def reset(self) -> None:
        """Forget every track (a new stream); ids start from 1 again."""
        self._tracker.reset()
        self.frames = 0


def id_color(track_id: Optional[int]) -> Tuple[int, int, int]:
    """The RGB colour (0..255) of a person id: hues spread by the golden ratio, so that ids close
    in number differ in colour; grey for None / -1 (no id yet)."""
    if track_id is None or track_id < 0:
        return (160, 160, 160)
    hue = (track_id * 0.6180339887) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return (int(round(255 * r)), int(round(255 * g)), int(round(255 * b)))
