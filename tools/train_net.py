#!/usr/bin/env python
"""Train and evaluate bodyparts models with Detectron2's flags.

    python tools/train_net.py \\
        --config-file configs/quick_schedules/bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml
    python tools/train_net.py --config-file CFG --num-gpus 2  # 2 GPUs, or 2 CPU processes (gloo)
    python tools/train_net.py --config-file CFG --resume      # continue from the last checkpoint
    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth
"""

import warnings

# Harmless warnings that Detectron2 v0.6 / torchvision code triggers on every run with current
# PyTorch; silenced here so that the training log stays readable.
for _message in (
    "`torch.jit.script` is deprecated",
    "torch.meshgrid: in an upcoming release",
    "The given NumPy array is not writable",
    "Creating a tensor from a list of numpy.ndarrays",
):
    warnings.filterwarnings("ignore", message=_message)

import os  # noqa: E402
import sys  # noqa: E402

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.engine import default_argument_parser, hooks  # noqa: E402

import bodyparts  # noqa: E402,F401  (prepares Detectron2, registers datasets)
from bodyparts.checkpoint import load_weights  # noqa: E402
from bodyparts.engine import Trainer, launch, setup_cfg  # noqa: E402
from bodyparts.utils.cli import ToolError, add_weights_flag, make_output_dir, run_tool  # noqa: E402


def eval_weights(cfg, args) -> str:
    """The weights --eval-only evaluates: MODEL.WEIGHTS, or with --resume the last checkpoint of
    OUTPUT_DIR when there is one (as Detectron2's ``resume_or_load``)."""
    if args.resume:
        checkpointer = DetectionCheckpointer(None, save_dir=cfg.OUTPUT_DIR)
        if checkpointer.has_checkpoint():
            return checkpointer.get_checkpoint_file()
    return cfg.MODEL.WEIGHTS


def main(args):
    cfg = setup_cfg(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        load_weights(model, eval_weights(cfg, args), allow_partial=args.allow_partial_weights)
        results = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            results.update(Trainer.test_with_TTA(cfg, model))
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    if cfg.TEST.AUG.ENABLED:  # after training (and at every EVAL_PERIOD): also evaluate with TTA
        trainer.register_hooks(
            [hooks.EvalHook(0, lambda: trainer.test_with_TTA(cfg, trainer.model))]
        )
    return trainer.train()


def check(args) -> str:
    """Config, output folder and --eval-only weights checked before any process starts (one-line
    errors); returns MODEL.DEVICE."""
    try:
        cfg = setup_cfg(args, for_launch_only=True)
    except (KeyError, ValueError) as e:  # named by setup_cfg: file, key, value
        raise ToolError(e.args[0] if e.args else str(e)) from None
    make_output_dir(cfg.OUTPUT_DIR, "OUTPUT_DIR")
    weights = eval_weights(cfg, args) if args.eval_only else ""
    if args.eval_only and not weights:
        raise ToolError(
            "--eval-only needs MODEL.WEIGHTS (or --resume with a checkpoint in OUTPUT_DIR)"
        )
    if weights and "://" not in weights and not os.path.isfile(weights):
        raise ToolError(f"MODEL.WEIGHTS file {weights} does not exist")
    return cfg.MODEL.DEVICE


def run(args) -> int:
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
        device=check(args),
    )
    return 0


if __name__ == "__main__":
    parser = default_argument_parser()
    add_weights_flag(parser)
    sys.exit(run_tool(run, parser.parse_args(), prog="train_net.py"))
