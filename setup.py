"""bodyparts: multi-person body-part parsing on Detectron2.

Dependencies are pinned in requirements/*.txt and installed by scripts/setup_env.sh (Detectron2 is
not on PyPI: the script builds it); ``pip install -e .`` installs the package only.
"""

from setuptools import find_packages, setup

setup(
    name="bodyparts",
    version="0.1.0",
    description="Detectron2 extension for multi-person body-part parsing",
    packages=find_packages(include=("bodyparts", "bodyparts.*")),
    # The start-up hook for the pure-Python Detectron2 v0.6 build (scripts/setup_env.sh installs
    # its .pth only there): the import order of detectron2 and bodyparts does not matter.
    py_modules=["bodyparts_startup"],
    package_data={"bodyparts.serving": ["static/*"]},  # the web page served at GET /
    python_requires=">=3.9",
    install_requires=["numpy", "opencv-python-headless", "pycocotools", "scipy", "tqdm", "Pillow"],
    zip_safe=False,
)
