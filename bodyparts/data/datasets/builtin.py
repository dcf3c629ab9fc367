"""Register the built-in datasets under the datasets root (``$DETECTRON2_DATASETS``, default ``./datasets``).

Registration is lazy: nothing is read or generated until a split is first used.
"""
from .synthetic import register_synthetic_people


def register_all() -> None:
    register_synthetic_people()


register_all()
