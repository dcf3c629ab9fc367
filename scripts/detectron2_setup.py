"""setup.py used in place of the one shipped in the ``pb1-detectron2==0.6`` sdist.

The sdist holds Detectron2 v0.6's Python sources unchanged but not the C++/CUDA sources of
``detectron2._C``; its own setup.py always compiles them, imports torch at the top, installs the
sdist's top-level ``tools/`` as a package named ``tools`` and finds no model-zoo configs. This file
builds a pure-Python distribution named ``detectron2`` instead:

* no extension modules (bodyparts.compat provides what ``_C`` would, in PyTorch/torchvision);
* the model-zoo YAML/py configs under ``detectron2/model_zoo/configs`` as package data;
* the three projects v0.6 maps under ``detectron2.projects`` when present;
* no ``tools`` package; requirements without black/future/pydot (export and formatting only).

It is copied over the sdist's setup.py by scripts/setup_env.sh; no Python file of Detectron2 is
edited.
"""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

PROJECTS = {
    "detectron2.projects.point_rend": "projects/PointRend/point_rend",
    "detectron2.projects.deeplab": "projects/DeepLab/deeplab",
    "detectron2.projects.panoptic_deeplab": "projects/Panoptic-DeepLab/panoptic_deeplab",
}
PROJECTS = {k: v for k, v in PROJECTS.items() if os.path.isdir(os.path.join(HERE, v))}


def model_zoo_configs():
    root = os.path.join(HERE, "detectron2", "model_zoo")
    found = []
    for dirpath, _, filenames in os.walk(os.path.join(root, "configs")):
        for name in filenames:
            if name.endswith((".yaml", ".py")):
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


setup(
    name="detectron2",
    version="0.6+nocsrc",
    author="FAIR",
    url="https://github.com/facebookresearch/detectron2",
    description=(
        "Detectron2 v0.6 Python sources (pb1-detectron2 sdist), built without detectron2._C"
    ),
    packages=find_packages(include=("detectron2", "detectron2.*")) + list(PROJECTS.keys()),
    package_dir=PROJECTS,
    package_data={"detectron2.model_zoo": model_zoo_configs()},
    python_requires=">=3.7",
    install_requires=[
        "Pillow>=7.1",
        "matplotlib",
        "pycocotools>=2.0.2",
        "termcolor>=1.1",
        "yacs>=0.1.8",
        "tabulate",
        "cloudpickle",
        "tqdm>4.29.0",
        "tensorboard",
        "fvcore>=0.1.5,<0.1.6",
        "iopath>=0.1.7,<0.1.10",
        "omegaconf>=2.1",
        "hydra-core>=1.1",
    ],
    zip_safe=False,
)
