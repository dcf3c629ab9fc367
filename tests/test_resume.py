"""Resume restores everything (issue 16): a ``tools/train_net.py`` run killed with SIGKILL right
after checkpoint N and resumed with ``--resume`` to 2N ends with the same model and optimizer as an
uninterrupted 2N-step run.

Deterministic settings of the runs (``RESUME_OPTS``, ``_env``), on CPU:

* one training image (``BODYPARTS.SYNTHETIC.NUM_TRAIN 1``, one person) and ``SOLVER.IMS_PER_BATCH
  1``: every batch is that image, whatever the sampler's position (Detectron2's ``TrainingSampler``
  restarts its stream on resume);
* ``DATALOADER.NUM_WORKERS 0`` (the mapper runs in the training process, whose random states the
  checkpoint restores), ``INPUT.RANDOM_FLIP none``, ``SEED 7``;
* one thread (``OMP_NUM_THREADS=1``, ``MKL_NUM_THREADS=1``).

Both runs compute the same operations on the same shapes in the same process layout, so neither
``torch.use_deterministic_algorithms`` nor turning oneDNN off is needed: measured difference 0.0 on
Detectron2 v0.6 and on upstream main. The random subsampling of anchors and proposals stays on
(Detectron2's defaults): the runs agree only when the resumed run draws the same random numbers
(restored random states) and has the SGD momentum back (0.035 on the code before the fix).
"""

import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from argparse import Namespace

import numpy as np
import pytest
import torch
from conftest import REPO

from bodyparts.engine import Trainer, setup_cfg

TRAIN_NET = os.path.join(REPO, "tools", "train_net.py")
CONFIG = os.path.join(
    REPO, "configs", "quick_schedules", "bodyparts_rcnn_R18_FPN_synthetic_cpu_shared.yaml"
)
N = 4  # checkpoint N is written after N steps (model_0000003.pth); the runs train 2N steps
CHECKPOINT = f"model_{N - 1:07d}.pth"
TOLERANCE = 1e-6
RESUME_OPTS = [
    "BODYPARTS.SYNTHETIC.IMAGE_SIZE",
    "96",
    "BODYPARTS.SYNTHETIC.NUM_TRAIN",
    "1",
    "BODYPARTS.SYNTHETIC.NUM_VAL",
    "1",
    "BODYPARTS.SYNTHETIC.MAX_PERSONS",
    "1",
    "INPUT.MIN_SIZE_TRAIN",
    "(96,)",
    "INPUT.MIN_SIZE_TEST",
    "96",
    "INPUT.RANDOM_FLIP",
    "none",
    "DATALOADER.NUM_WORKERS",
    "0",
    "SOLVER.IMS_PER_BATCH",
    "1",
    "SOLVER.MAX_ITER",
    str(2 * N),
    "SOLVER.CHECKPOINT_PERIOD",
    str(N),
    "SOLVER.WARMUP_ITERS",
    "2",
    "SOLVER.STEPS",
    f"({N + 2},)",  # the learning rate also changes after the checkpoint
    "SEED",
    "7",
    "MODEL.ROI_BODYPART_HEAD.CLASS_BALANCE",
    "inverse",  # persistent class-weight buffers
    "TEST.EVAL_PERIOD",
    "0",
    "DATASETS.TEST",
    "()",
]


def _log(out_dir) -> str:
    return str(out_dir) + ".stdout.log"


def _start(out_dir, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, TRAIN_NET, "--config-file", CONFIG, *(["--resume"] if resume else [])]
    cmd += [*RESUME_OPTS, "OUTPUT_DIR", str(out_dir)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with open(_log(out_dir), "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def _finish(proc: subprocess.Popen, out_dir) -> None:
    rc = proc.wait(timeout=600)
    assert rc == 0, open(_log(out_dir)).read()[-3000:]


def _last_checkpoint(out_dir):
    path = os.path.join(str(out_dir), "last_checkpoint")
    return open(path).read().strip() if os.path.exists(path) else None


def _kill_after_checkpoint(proc: subprocess.Popen, out_dir) -> None:
    """SIGKILL ``proc`` as soon as checkpoint N is written (the file, then ``last_checkpoint``
    naming it); fail if the run ended, or wrote a later checkpoint, before the kill landed."""
    deadline = time.time() + 300
    while _last_checkpoint(out_dir) != CHECKPOINT:
        if proc.poll() is not None:
            log = open(_log(out_dir)).read()[-3000:]
            pytest.fail(f"training ended before checkpoint N:\n{log}")
        assert time.time() < deadline, f"no {CHECKPOINT} within 300 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended by itself (rc {proc.returncode}) before the kill: "
        "train longer after checkpoint N"
    )
    later = _last_checkpoint(out_dir)
    final = os.path.exists(os.path.join(str(out_dir), "model_final.pth"))
    assert later == CHECKPOINT and not final, (
        f"the kill landed after the run wrote {later}: train longer after checkpoint N"
    )


@pytest.fixture(scope="module")
def runs(datasets_root, tmp_path_factory):
    """An uninterrupted 2N-step run and, in parallel, a run killed right after checkpoint N, then
    resumed to 2N. Returns their output folders and a copy of checkpoint N."""
    root = tmp_path_factory.mktemp("resume")
    full, killed = root / "uninterrupted", root / "killed"
    full_proc, killed_proc = _start(full), _start(killed)
    try:
        _kill_after_checkpoint(killed_proc, killed)
    except BaseException:
        for proc in (killed_proc, full_proc):
            if proc.poll() is None:
                proc.kill()
        raise
    shutil.copy(killed / CHECKPOINT, root / CHECKPOINT)
    resumed = _start(killed, resume=True)
    _finish(full_proc, full)
    _finish(resumed, killed)
    return {"uninterrupted": full, "resumed": killed, "checkpoint": root / CHECKPOINT}


def _load(path):
    return torch.load(str(path), map_location="cpu", weights_only=True)


def _momentum_buffers(checkpoint):
    state = checkpoint["trainer"]["_trainer"]["optimizer"]["state"]
    return {i: s["momentum_buffer"] for i, s in state.items()}


def _max_difference(a, b) -> float:
    assert a.keys() == b.keys()
    return max(
        (x.double() - b[k].double()).abs().max().item() if x.numel() else 0.0 for k, x in a.items()
    )


def test_kill_and_resume_equals_uninterrupted_run(runs):
    """The final weights (every tensor of the model's state dict, class weights included) and SGD
    momentum buffers of the killed-and-resumed run equal the uninterrupted run's to 1e-6."""
    assert f"Starting training from iteration {N}" in open(_log(runs["resumed"])).read()
    full = _load(runs["uninterrupted"] / "model_final.pth")
    resumed = _load(runs["resumed"] / "model_final.pth")
    assert full["iteration"] == resumed["iteration"] == 2 * N - 1
    moved = _max_difference(full["model"], _load(runs["checkpoint"])["model"])
    diff = _max_difference(full["model"], resumed["model"])
    print(
        f"\nlargest parameter difference, resumed vs uninterrupted run: {diff:.3g} "
        f"(the parameters moved by up to {moved:.3g} after checkpoint N)"
    )
    assert moved > 100 * TOLERANCE
    assert diff <= TOLERANCE, (
        f"the resumed run's parameters differ from the uninterrupted run's by {diff:.3g}"
    )
    momentum = _max_difference(_momentum_buffers(full), _momentum_buffers(resumed))
    print(f"largest momentum buffer difference: {momentum:.3g}")
    assert momentum <= TOLERANCE
    assert full["trainer"]["hooks"] == resumed["trainer"]["hooks"]  # the LR scheduler


def test_checkpoint_holds_optimizer_scheduler_and_random_states(runs):
    """Checkpoint N loads with ``torch.load(weights_only=True)`` and holds a non-zero momentum
    buffer for every trained parameter, the LR scheduler after N steps, the class weights and the
    random states."""
    ckpt = _load(runs["checkpoint"])
    trainer = ckpt["trainer"]
    assert trainer["iteration"] == N - 1
    assert trainer["hooks"]["LRScheduler"]["last_epoch"] == N
    optimizer = trainer["_trainer"]["optimizer"]
    buffers = _momentum_buffers(ckpt)
    assert len(buffers) == sum(len(group["params"]) for group in optimizer["param_groups"])
    assert all(b.abs().sum() > 0 for b in buffers.values()), "zero momentum buffers in checkpoint N"
    weights = ckpt["model"]["roi_heads.part_branch.class_weights"]
    assert torch.isfinite(weights).all() and weights.sum() > 0
    rng = trainer["rng_states"]
    assert rng["world_size"] == 1 and rng["torch"].dtype == torch.uint8
    assert rng["numpy"]["key"].shape == (624,) and rng["python"]["state"].shape == (625,)


def test_rng_states_round_trip(tmp_path):
    """The random states survive ``torch.save`` / ``torch.load(weights_only=True)`` and restore
    torch, numpy and ``random`` (Gaussian cache included)."""
    from bodyparts.engine import get_rng_states, set_rng_states

    random.gauss(0, 1)  # leaves a cached Gaussian
    torch.save(get_rng_states(), tmp_path / "rng.pth")

    def draw():
        return (
            torch.rand(3),
            np.random.rand(3),
            random.random(),
            random.gauss(0, 1),
            np.random.randn(),
        )

    first = draw()
    set_rng_states(torch.load(tmp_path / "rng.pth", weights_only=True))
    again = draw()
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2:] == again[2:]


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_old_checkpoint_without_optimizer_state_resumes(runs, tmp_path, monkeypatch):
    """A checkpoint without ``_trainer`` and random states (what Detectron2 v0.6's DefaultTrainer
    wrote) resumes with a warning: model, iteration, LR scheduler and learning rates restored, the
    optimizer without momentum; the class weights are the checkpoint's, not recomputed; training
    runs to the end. The Trainer reads and writes checkpoints with BodyPartsCheckpointer."""
    from detectron2.engine.hooks import PeriodicCheckpointer

    from bodyparts.checkpoint import BodyPartsCheckpointer
    from bodyparts.modeling.roi_heads import class_weights

    full = _load(runs["checkpoint"])
    old_trainer = {k: v for k, v in full["trainer"].items() if k not in ("_trainer", "rng_states")}
    old = dict(full, trainer=old_trainer)
    out = tmp_path / "old"
    out.mkdir()
    torch.save(old, out / CHECKPOINT)
    (out / "last_checkpoint").write_text(CHECKPOINT)
    opts = [*RESUME_OPTS, "OUTPUT_DIR", str(out)]
    args = Namespace(config_file=CONFIG, opts=opts, eval_only=False, resume=True, num_gpus=1)
    trainer = Trainer(setup_cfg(args))
    assert isinstance(trainer.checkpointer, BodyPartsCheckpointer)
    periodic = [h for h in trainer._hooks if isinstance(h, PeriodicCheckpointer)]
    assert len(periodic) == 1 and periodic[0].checkpointer is trainer.checkpointer
    warnings = _Warnings()
    logging.getLogger("bodyparts.engine.trainer").addHandler(warnings)
    try:
        trainer.resume_or_load(resume=True)
    finally:
        logging.getLogger("bodyparts.engine.trainer").removeHandler(warnings)
    assert any("no optimizer state" in m for m in warnings.messages), warnings.messages
    assert trainer.start_iter == N
    assert not trainer.optimizer.state_dict()["state"]  # no momentum
    saved_lrs = [g["lr"] for g in full["trainer"]["_trainer"]["optimizer"]["param_groups"]]
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx(saved_lrs)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, old["model"][k]), k

    def recomputed(*args, **kwargs):
        raise AssertionError("class weights recomputed on resume")

    monkeypatch.setattr(class_weights, "class_weights_from_cfg", recomputed)
    trainer.train()  # ClassWeightsHook keeps the checkpoint's weights
    final = _load(out / "model_final.pth")
    assert final["iteration"] == 2 * N - 1
    weights = final["model"]["roi_heads.part_branch.class_weights"]
    assert torch.equal(weights, old["model"]["roi_heads.part_branch.class_weights"])
    assert all(b.abs().sum() > 0 for b in _momentum_buffers(final).values())
