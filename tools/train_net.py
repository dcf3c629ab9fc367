#!/usr/bin/env python
"""Train and evaluate bodyparts models with Detectron2's flags.

    python tools/train_net.py --config-file configs/quick_schedules/bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml
    python tools/train_net.py --config-file CFG --num-gpus 2          # 2 GPUs, or 2 CPU processes (gloo)
    python tools/train_net.py --config-file CFG --resume              # continue from the last checkpoint
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

import bodyparts  # noqa: E402,F401  (prepares Detectron2, registers datasets)
from bodyparts.engine import Trainer, launch, setup_cfg  # noqa: E402
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.engine import default_argument_parser, hooks  # noqa: E402


def main(args):
    cfg = setup_cfg(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            results.update(Trainer.test_with_TTA(cfg, model))
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    if cfg.TEST.AUG.ENABLED:  # after training (and at every EVAL_PERIOD): also evaluate with TTA
        trainer.register_hooks([hooks.EvalHook(0, lambda: trainer.test_with_TTA(cfg, trainer.model))])
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    device = setup_cfg(args, for_launch_only=True).MODEL.DEVICE
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
        device=device,
    )
