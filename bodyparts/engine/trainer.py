"""The bodyparts Trainer: Detectron2's DefaultTrainer with mappers and evaluators chosen by
metadata, and checkpoints that resume everything (optimizer, scheduler, hooks, AMP scaler, random
states)."""

import logging
import os
import random
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Union

import numpy as np
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.data import (
    DatasetMapper,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.engine import DefaultTrainer, HookBase, default_setup
from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators
from detectron2.utils import comm

from ..checkpoint import BodyPartsCheckpointer
from ..compat import ddp_without_device_ids_on_cpu
from ..config import add_bodyparts_config, check_bodyparts_config
from ..data.datasets.synthetic import register_synthetic_from_cfg
from ..model_kinds import build_coco_evaluator, model_kind_of
from ..modeling.roi_heads.class_weights import init_class_weights
from ..taxonomy import get_keypoint_taxonomy

__all__ = [
    "Trainer",
    "ClassWeightsHook",
    "setup_cfg",
    "build_mapper",
    "check_keypoint_config",
    "MAPPERS",
    "EVALUATORS",
    "build_coco_evaluator",
    "get_rng_states",
    "set_rng_states",
    "RNG_STATES_KEY",
    "TrainingLoader",
]

logger = logging.getLogger(__name__)

# metadata "data_format" -> mapper class, for record formats other than bodyparts' own (whose
# mapper depends on the model kind: bodyparts.model_kinds). Datasets without the key use
# Detectron2's own DatasetMapper.
MAPPERS: Dict[str, Callable] = {}


def build_bodyparts_evaluators(
    cfg: CfgNode, dataset_name: str, output_dir: str
) -> List[DatasetEvaluator]:
    """The evaluators of the config's model kind (:mod:`bodyparts.model_kinds`): the image-level
    parsing metrics (semantic part segmenter); COCO AP (boxes, silhouettes, keypoints) and, with
    the part branch, the parsing metrics (instance models); plus PQ / PartPQ (panoptic models)."""
    return model_kind_of(cfg).evaluators(cfg, dataset_name, output_dir)


# metadata "evaluator_type" -> builder(cfg, dataset_name, output_dir) returning evaluator(s)
EVALUATORS: Dict[
    str, Callable[[CfgNode, str, str], Union[DatasetEvaluator, List[DatasetEvaluator]]]
] = {
    "bodyparts": build_bodyparts_evaluators,
    "coco": build_coco_evaluator,
}


def _data_format(dataset_names: List[str]) -> str:
    formats = {MetadataCatalog.get(n).get("data_format", "detectron2") for n in dataset_names}
    if len(formats) > 1:
        raise ValueError(
            f"datasets {dataset_names} mix record formats {sorted(formats)}; train them separately"
        )
    return formats.pop()


def build_mapper(cfg: CfgNode, dataset_names: List[str], is_train: bool):
    """The mapper for ``dataset_names``: for bodyparts records (metadata ``data_format``
    "bodyparts") the model kind's (:mod:`bodyparts.model_kinds`), for other formats
    :data:`MAPPERS`'s, else None (Detectron2's own DatasetMapper)."""
    data_format = _data_format(dataset_names)
    if data_format == "bodyparts":
        cls = model_kind_of(cfg).mapper
    else:
        cls = MAPPERS.get(data_format)
    return cls(cfg, is_train) if cls is not None else None


class ClassWeightsHook(HookBase):
    """Before the first iteration, sets the class weights of the part losses (``CLASS_BALANCE``
    from ``DATASETS.TRAIN``'s pixel counts, or ``CLASS_WEIGHTS``) in the model's persistent
    buffers, so that they are saved with every checkpoint. When training resumes from a checkpoint
    that carries them, they are kept and the training set is not read for them."""

    def __init__(self, cfg: CfgNode):
        self._cfg = cfg

    def before_train(self) -> None:
        model = self.trainer.model
        model = model.module if hasattr(model, "module") else model  # DDP
        # start_iter > 0 only after DefaultTrainer.resume_or_load resumed from a checkpoint
        init_class_weights(model, self._cfg, keep_loaded=self.trainer.start_iter > 0)


# Key of the process's random states in the trainer's state dict (the checkpoint's "trainer" entry).
RNG_STATES_KEY = "rng_states"


def get_rng_states() -> Dict[str, Any]:
    """The random states of this process, as tensors, ints, floats, strings and None (what
    ``torch.load(weights_only=True)`` reads; no numpy arrays):

    * ``torch``: the CPU generator, (5056,) uint8 tensor;
    * ``cuda``: the current CUDA device's generator (uint8 tensor), None when CUDA is not
      initialised in this process (nothing has drawn from it);
    * ``numpy``: numpy's global generator (``np.random.*``, which Detectron2's augmentations use):
      ``bit_generator`` name, ``key`` (624,) int64 tensor of the MT19937 words, ``pos``,
      ``has_gauss``, ``cached_gaussian``;
    * ``python``: ``random``'s generator: ``version``, ``state`` (625,) int64 tensor,
      ``gauss_next`` (float or None);
    * ``world_size``: the number of processes of the run (each has its own states).
    """
    bit_generator, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state()
    return {
        "world_size": comm.get_world_size(),
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": {
            "bit_generator": str(bit_generator),
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }


def set_rng_states(states: Dict[str, Any]) -> None:
    """Restore the random states of :func:`get_rng_states` in this process. A CUDA state is
    restored when CUDA is available (otherwise skipped with a warning)."""
    torch.set_rng_state(states["torch"].to("cpu", torch.uint8))
    if states.get("cuda") is not None:
        if torch.cuda.is_available():
            torch.cuda.set_rng_state(states["cuda"].to("cpu", torch.uint8))
        else:
            logger.warning("CUDA random state in the checkpoint not restored: no CUDA here")
    state = states["numpy"]
    key = state["key"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["bit_generator"], key, state["pos"], state["has_gauss"], state["cached_gaussian"])
    )
    state = states["python"]
    random.setstate((state["version"], tuple(state["state"].tolist()), state["gauss_next"]))


class _RandomStatesAtFirstRecord:
    """A dataset mapper that, once armed with random states (:meth:`restore_before_next`),
    restores them just before it maps its next record in the training process.

    A resumed run restores the checkpoint's random states when it loads it, but the training loader
    then creates its DataLoader iterator, which draws a base seed from torch's global generator, at
    the first step (the uninterrupted run drew it at its step 0): restoring them again just before
    the first record is mapped makes the resumed run draw the same numbers as the uninterrupted one
    from there on (mapper augmentations, then the model's anchor and proposal sampling), on
    Detectron2 v0.6 and main alike. Only with ``DATALOADER.NUM_WORKERS 0``: in loader worker
    processes the mapper does nothing more than map."""

    def __init__(self, mapper: Callable[[dict], Any]):
        self.mapper = mapper
        self._pending: Optional[Dict[str, Any]] = None

    def restore_before_next(self, rng_states: Dict[str, Any]) -> None:
        self._pending = rng_states

    def __call__(self, record: dict) -> Any:
        if self._pending is not None and torch.utils.data.get_worker_info() is None:
            set_rng_states(self._pending)
            self._pending = None
        return self.mapper(record)


class TrainingLoader:
    """The Trainer's training data: Detectron2's training loader (iterable of batches, ``loader``)
    and the mapper of its records (``mapper``, a :class:`_RandomStatesAtFirstRecord`)."""

    def __init__(self, loader: Iterable, mapper: _RandomStatesAtFirstRecord):
        self.loader = loader
        self.mapper = mapper

    def __iter__(self) -> Iterator:
        return iter(self.loader)


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` that also trains on CPU with several processes (gloo DDP), and picks the
    dataset mapper and evaluators from each dataset's metadata (``data_format``,
    ``evaluator_type``). Writes metrics.json, tensorboard events and checkpoints to
    ``cfg.OUTPUT_DIR`` like Detectron2. The class weights of the part losses are computed when
    training starts (:class:`ClassWeightsHook`), never when the model is built.

    Checkpoints are written and read by :class:`~bodyparts.checkpoint.BodyPartsCheckpointer` and
    resume everything (:meth:`state_dict`, docs/training.md): the model (class weights included),
    iteration, hook states (the LR scheduler), optimizer (SGD momentum), AMP grad scaler and, in a
    single-process run, the random states, on Detectron2 v0.6 and upstream main alike."""

    def __init__(self, cfg: CfgNode):
        with ddp_without_device_ids_on_cpu(cfg.MODEL.DEVICE):
            super().__init__(cfg)

    def build_hooks(self) -> List[HookBase]:
        """:class:`ClassWeightsHook`, then Detectron2's default hooks (first, so that the weights
        are set before any other hook or iteration runs). The default PeriodicCheckpointer gets
        the ``BodyPartsCheckpointer`` (:meth:`_use_bodyparts_checkpointer`)."""
        self._use_bodyparts_checkpointer()
        return [ClassWeightsHook(self.cfg), *super().build_hooks()]

    def _use_bodyparts_checkpointer(self) -> None:
        """Replace the ``DetectionCheckpointer`` that ``DefaultTrainer.__init__`` creates just
        before it calls :meth:`build_hooks` by a ``BodyPartsCheckpointer`` with the same model,
        directory, rank-0 writing and checkpointables (the trainer), so that resuming and the
        periodic checkpoints use it."""
        old = self.checkpointer
        if isinstance(old, BodyPartsCheckpointer):
            return
        self.checkpointer = BodyPartsCheckpointer(
            old.model, old.save_dir, save_to_disk=old.save_to_disk, **old.checkpointables
        )

    def _parent_saves_inner_trainer(self) -> bool:
        """Whether ``DefaultTrainer.state_dict`` saves (and its ``load_state_dict`` restores) the
        inner trainer as ``_trainer`` (upstream main does, Detectron2 v0.6 does not)."""
        return "_trainer" in super().state_dict()

    def state_dict(self) -> Dict[str, Any]:
        """What a checkpoint's ``trainer`` entry holds: DefaultTrainer's ``iteration`` and
        ``hooks`` (the LR scheduler's state is the ``LRScheduler`` hook's), ``_trainer`` (the inner
        trainer's: optimizer with SGD momentum buffers, AMP's ``grad_scaler``; added here when
        Detectron2 does not save it itself, in the same layout as upstream main) and
        :data:`RNG_STATES_KEY` (:func:`get_rng_states`). Everything loads with
        ``torch.load(weights_only=True)``."""
        ret = super().state_dict()
        if "_trainer" not in ret:  # Detectron2 v0.6's DefaultTrainer leaves its inner trainer out
            ret["_trainer"] = self._trainer.state_dict()
        ret[RNG_STATES_KEY] = get_rng_states()
        return ret

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`, from a checkpoint of either Detectron2 build. A checkpoint
        without ``_trainer`` (written by v0.6's DefaultTrainer) resumes with a warning: the
        optimizer starts without momentum, its learning rates are set from the restored scheduler.
        The random states are restored only when the checkpoint and this run are single-process
        (each process of a multi-process run keeps its own stream, seeded with ``SEED + rank``)."""
        state = dict(state_dict)
        rng_states = state.pop(RNG_STATES_KEY, None)
        inner = state.get("_trainer")
        if inner is None:
            logger.warning(
                "The checkpoint has no optimizer state ('_trainer' in its 'trainer' entry; "
                "written by Detectron2 v0.6's DefaultTrainer): the optimizer restarts without SGD "
                "momentum (and a new AMP grad scaler); model, iteration and LR schedule are "
                "restored"
            )
        if self._parent_saves_inner_trainer():
            if inner is None:  # keep the optimizer as built (DefaultTrainer requires the key)
                state["_trainer"] = self._trainer.state_dict()
            super().load_state_dict(state)
        else:
            state.pop("_trainer", None)
            super().load_state_dict(state)
            if inner is not None:
                self._trainer.load_state_dict(inner)
        if inner is None:
            self._learning_rates_from_scheduler()
        if self._restore_rng_states(rng_states) and isinstance(self.data_loader, TrainingLoader):
            self.data_loader.mapper.restore_before_next(rng_states)

    def _learning_rates_from_scheduler(self) -> None:
        """Set the optimizer's learning rates to the restored scheduler's (otherwise the first
        resumed step would use the rates of iteration 0, warm-up included)."""
        get_lr = getattr(self.scheduler, "get_lr", None)
        if get_lr is None:
            return
        for group, lr in zip(self.optimizer.param_groups, get_lr()):
            group["lr"] = lr

    @staticmethod
    def _restore_rng_states(rng_states: Optional[Dict[str, Any]]) -> bool:
        """Restore ``rng_states`` in a single-process run; returns whether they were restored."""
        if rng_states is None:
            logger.info("The checkpoint has no random states: the run goes on with the seeded ones")
            return False
        if comm.get_world_size() > 1 or rng_states.get("world_size", 1) > 1:
            logger.info(
                "Random states not restored: a run of several processes (each process keeps the "
                "stream seeded with SEED + rank)"
            )
            return False
        set_rng_states(rng_states)
        logger.info("Random states (torch, CUDA, numpy, python) restored from the checkpoint")
        return True

    @classmethod
    def build_model(cls, cfg: CfgNode):
        """Detectron2's ``build_model``, after registering the synthetic splits the config sizes
        (the panoptic model reads its datasets' metadata when it is built)."""
        register_synthetic_from_cfg(cfg)
        return super().build_model(cfg)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> TrainingLoader:
        """Detectron2's training loader with the mapper of :func:`build_mapper` (Detectron2's
        ``DatasetMapper`` for its own formats), in a :class:`TrainingLoader` (iterable of batches)
        whose mapper restores a resumed run's random states before its first record."""
        register_synthetic_from_cfg(cfg)  # the sizes of BODYPARTS.SYNTHETIC (idempotent)
        mapper = build_mapper(cfg, list(cfg.DATASETS.TRAIN), True) or DatasetMapper(cfg, True)
        mapper = _RandomStatesAtFirstRecord(mapper)
        return TrainingLoader(build_detection_train_loader(cfg, mapper=mapper), mapper)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        register_synthetic_from_cfg(cfg)  # the sizes of BODYPARTS.SYNTHETIC (idempotent)
        return build_detection_test_loader(
            cfg, dataset_name, mapper=build_mapper(cfg, [dataset_name], False)
        )

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: str = None):
        register_synthetic_from_cfg(cfg)  # the sizes of BODYPARTS.SYNTHETIC (idempotent)
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", None)
        if evaluator_type not in EVALUATORS:
            raise KeyError(
                f"dataset {dataset_name!r} has evaluator_type {evaluator_type!r}; "
                f"bodyparts knows {sorted(EVALUATORS)}"
            )
        evaluators = EVALUATORS[evaluator_type](cfg, dataset_name, output_folder)
        return (
            evaluators
            if isinstance(evaluators, DatasetEvaluator)
            else DatasetEvaluators(evaluators)
        )

    @classmethod
    def test_with_TTA(cls, cfg: CfgNode, model):
        """Evaluate with test-time augmentation (``TEST.AUG``): multi-scale + flip for the semantic
        part segmenter (``SemSegTTA``), flip of the part outputs for the instance part model
        (``PartFlipTTA``). Results keys get a ``_TTA`` suffix; outputs go to ``inference_TTA/``."""
        wrapped = model_kind_of(cfg).tta(cfg, model)  # check_tta_config: the kind has one
        evaluators = [
            cls.build_evaluator(cfg, name, os.path.join(cfg.OUTPUT_DIR, "inference_TTA", name))
            for name in cfg.DATASETS.TEST
        ]
        results = cls.test(cfg, wrapped, evaluators)
        return OrderedDict((k + "_TTA", v) for k, v in results.items())


def check_tta_config(cfg: CfgNode, source: str = "config") -> None:
    """``TEST.AUG.ENABLED`` needs a model kind with test-time augmentation
    (:mod:`bodyparts.model_kinds`): the semantic part segmenter, or an instance model with the
    part branch (flip only). Raises ValueError naming the key."""
    if not cfg.TEST.AUG.ENABLED:
        return
    arch = cfg.MODEL.META_ARCHITECTURE
    kind = model_kind_of(cfg)
    if kind.tta is not None and (cfg.MODEL.BODYPART_ON or not kind.tta_needs_part_branch):
        return
    raise ValueError(
        f"{source}: TEST.AUG.ENABLED True, but MODEL.META_ARCHITECTURE {arch!r} has no test-time "
        "augmentation in bodyparts (semantic part segmenter: multi-scale + flip; BodyPartsRCNN "
        "with MODEL.BODYPART_ON: flip of the part outputs)"
    )


def check_keypoint_config(cfg: CfgNode, source: str = "config") -> None:
    """With keypoints on, ``MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS`` must equal the number of
    keypoints of ``BODYPARTS.KEYPOINT_TAXONOMY`` (raises ValueError naming both keys)."""
    node = cfg.MODEL.ROI_BODYPART_HEAD
    if not (cfg.MODEL.KEYPOINT_ON or (cfg.MODEL.BODYPART_ON and node.KEYPOINTS_FROM_PARTS)):
        return
    kps = get_keypoint_taxonomy(cfg.BODYPARTS.KEYPOINT_TAXONOMY)
    if cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS != kps.num_keypoints:
        raise ValueError(
            f"{source}: MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS="
            f"{cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS} "
            f"but BODYPARTS.KEYPOINT_TAXONOMY={kps.name!r} has {kps.num_keypoints} keypoints"
        )


def setup_cfg(
    args,
    *,
    for_launch_only: bool = False,
    add_configs: Iterable[Callable[[CfgNode], None]] = (),
) -> CfgNode:
    """Build the config from ``--config-file`` and trailing opts (checked), and, unless
    ``for_launch_only``, Detectron2's ``default_setup`` (logging, seeding with ``SEED``, the config
    saved in OUTPUT_DIR). No dataset is registered here: the Trainer registers the synthetic
    splits the config sizes when it builds data (:func:`register_synthetic_from_cfg`).

    Args:
        add_configs: functions adding another project's keys before the file is merged (e.g.
            DensePose's ``add_densepose_config``), after ``add_bodyparts_config``.
    Raises:
        KeyError / ValueError naming the config file and the bad key.
    """
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    for add_config in add_configs:
        add_config(cfg)
    try:
        cfg.merge_from_file(args.config_file)
    except KeyError as e:
        raise KeyError(
            f"{args.config_file}: {e.args[0] if e.args else e} (typo in a config key?)"
        ) from None
    try:
        cfg.merge_from_list(args.opts)
    except (KeyError, AssertionError) as e:  # yacs asserts on unknown keys in merge_from_list
        raise KeyError(f"command-line opts {args.opts}: {e.args[0] if e.args else e}") from None
    except ValueError as e:
        raise ValueError(f"command-line opts {args.opts}: {e}") from None
    check_bodyparts_config(cfg, args.config_file)
    check_keypoint_config(cfg, args.config_file)
    check_tta_config(cfg, args.config_file)
    cfg.freeze()
    if not for_launch_only:
        default_setup(cfg, args)
    return cfg
