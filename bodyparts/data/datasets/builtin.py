"""Register the built-in datasets under the datasets root (``$DETECTRON2_DATASETS``, default
``./datasets``).

Registration is lazy: nothing is read or generated until a split is first used, so registering
splits whose files are absent costs nothing (a missing file is reported, by name, when the split
is loaded). The expected directory tree of every dataset is in ``datasets/README.md``.

=========================  ====================================================================
dataset                    registered splits
=========================  ====================================================================
synthetic people           bodyparts_synthetic_{train,val}
PASCAL-Part persons        pascal_part_person_{train,val}
Pascal-Person-Part         pascal_person_part_{train,val}
Pascal-Panoptic-Parts      pascal_panoptic_parts_{train,val}
ChaLearn LAP 2014 Track 1  chalearn_lap2014_{train,val}, chalearn_lap2014_train_stride6
ADE20K 2016 / 2021         ade20k_{2016,2021}_person_{train,val}
J-HMDB                     jhmdb_split{1,2,3}_{train,test}, jhmdb_split1_train_stride5
CIHP                       cihp_{train,val}
LIP                        lip_{train,val}
MHP-v2                     mhp_v2_{train,val}
=========================  ====================================================================
"""

from .ade20k import register_all_ade20k
from .chalearn_lap import register_all_chalearn_lap
from .cihp import register_all_cihp
from .jhmdb import register_all_jhmdb
from .lip import register_all_lip
from .mhp_v2 import register_all_mhp_v2
from .pascal_panoptic_parts import register_all_pascal_panoptic_parts
from .pascal_part import register_all_pascal_part
from .synthetic import datasets_root, register_synthetic_people


def register_all(root: str = None) -> None:
    """Register every built-in split with ``root`` (default: ``$DETECTRON2_DATASETS``)."""
    root = datasets_root() if root is None else root
    register_synthetic_people()
    register_all_pascal_part(root)
    register_all_pascal_panoptic_parts(root)
    register_all_chalearn_lap(root)
    register_all_ade20k(root)
    register_all_jhmdb(root)
    register_all_cihp(root)
    register_all_lip(root)
    register_all_mhp_v2(root)


register_all()
