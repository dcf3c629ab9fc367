"""Part and keypoint taxonomies: the types, the registry, and the label mapping tables.

A *part taxonomy* is an ordered list of part names; label 0 is always background, part ``k`` of the
list has label ``k + 1`` (at most 254 parts: labels are uint8 and 255 is the ignore label).
Left/right symmetry is given by flip pairs of part names. Mapping one taxonomy to another is
declared with :func:`register_part_mapping` as ``{target part: [source parts]}``;
:func:`mapping_lut` turns a declaration into a label look-up table and raises
:class:`TaxonomyError` at start-up when the target cannot be expressed.

A *keypoint taxonomy* is an ordered list of keypoint names with a left/right flip map, a skeleton
(for drawing) and COCO OKS sigmas (for keypoint AP).

Taxonomies are looked up by name (``BODYPARTS.PART_TAXONOMY``, a record's ``part_taxonomy``).
The built-in ones (:mod:`bodyparts.taxonomy.builtin`) are registered when :mod:`bodyparts` is
imported, through the same public functions a user calls for their own:
:func:`register_part_taxonomy`, :func:`register_part_mapping`, :func:`register_keypoint_taxonomy`,
:func:`register_keypoint_mapping`. Registering a name again with the same content is a no-op; with
a different content it is an error. The registry lives in the process: register in every process
that uses the taxonomy (put the calls in a module that your training script imports at the top;
see ``docs/custom_datasets.md``).

Conventions: "left"/"right" are the person's own left and right (a person facing the camera has
their left arm on the image's right side), as in COCO keypoints.
"""

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "PartTaxonomy",
    "KeypointTaxonomy",
    "TaxonomyError",
    "PART_TAXONOMIES",
    "PART_MAPPINGS",
    "PART_UNMAPPED",
    "UNMAPPED_LABEL",
    "KEYPOINT_TAXONOMIES",
    "KEYPOINT_MAPPINGS",
    "MAX_PARTS",
    "get_part_taxonomy",
    "get_keypoint_taxonomy",
    "part_taxonomy_names",
    "keypoint_taxonomy_names",
    "register_part_taxonomy",
    "register_part_mapping",
    "register_keypoint_taxonomy",
    "register_keypoint_mapping",
    "unregister_part_taxonomy",
    "unregister_keypoint_taxonomy",
    "palette_colors",
    "mapping_lut",
    "can_express",
    "keypoint_index_map",
]

RGB = Tuple[int, int, int]
NamePair = Tuple[str, str]

UNMAPPED_LABEL = (
    255  # label of source parts with no counterpart in the target (= contract.PART_IGNORE)
)
MAX_PARTS = 254  # labels are uint8: background 0, parts 1..254, 255 = ignore


class TaxonomyError(ValueError):
    """A taxonomy is unknown, malformed, or cannot be expressed by a dataset."""


# ------------------------------------------------------------------------------------------------
# validation helpers (pure)


def _names(owner: str, what: str, names: Iterable) -> Tuple[str, ...]:
    """``names`` as a tuple of non-empty strings (a lone string is refused: a common slip)."""
    if isinstance(names, str):
        raise TaxonomyError(
            f"{owner}: {what} must be a sequence of names, got the string {names!r}"
        )
    out = tuple(names)
    for n in out:
        if not isinstance(n, str) or not n:
            raise TaxonomyError(f"{owner}: {what} must be non-empty strings, got {n!r}")
    return out


def _pairs(owner: str, what: str, pairs: Iterable) -> Tuple[NamePair, ...]:
    out = []
    for pair in pairs:
        pair = _names(owner, what, pair)
        if len(pair) != 2:
            raise TaxonomyError(f"{owner}: each of {what} must be a pair of names, got {pair}")
        out.append((pair[0], pair[1]))
    return tuple(out)


def _check_flip_pairs(
    owner: str, names: Sequence[str], pairs: Sequence[NamePair], item: str
) -> None:
    """Every name of a flip pair exists, a pair joins two different names, and each name is in at
    most one pair (so the flip is its own inverse)."""
    seen = set()
    for a, b in pairs:
        if a == b:
            raise TaxonomyError(f"{owner}: flip pair {(a, b)} pairs {item} {a!r} with itself")
        for p in (a, b):
            if p not in names:
                raise TaxonomyError(f"{owner}: flip pair names unknown {item} {p!r}")
            if p in seen:
                raise TaxonomyError(f"{owner}: {item} {p!r} in two flip pairs")
            seen.add(p)


def palette_colors(n: int, seed: int) -> Tuple[RGB, ...]:
    """``n`` reproducible RGB colours in [40, 255] (visualisation only); the colours that
    :func:`register_part_taxonomy` gives a taxonomy declared without any (``seed = n``)."""
    rng = np.random.RandomState(seed)
    return tuple(tuple(int(c) for c in rng.randint(40, 256, size=3)) for _ in range(n))


# ------------------------------------------------------------------------------------------------
# types


@dataclass(frozen=True)
class PartTaxonomy:
    """An ordered set of body parts. Label 0 is background; ``part_names[k]`` has label ``k + 1``.

    Sequences given as lists are stored as tuples, so two taxonomies with the same content compare
    equal. Raises :class:`TaxonomyError` when malformed: duplicate or empty names, a part named
    ``background``, more than :data:`MAX_PARTS` parts, a colour count other than the part count or
    a colour outside 0..255, a flip pair naming an unknown part, a part with itself, or a part
    already in another pair.
    """

    name: str
    part_names: Tuple[str, ...]
    colors: Tuple[RGB, ...]  # RGB per part, same order as part_names
    flip_pairs: Tuple[NamePair, ...] = ()  # (left part, right part)
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TaxonomyError(f"a part taxonomy needs a non-empty name, got {self.name!r}")
        owner = f"taxonomy {self.name!r}"
        names = _names(owner, "part_names", self.part_names)
        object.__setattr__(self, "part_names", names)
        if len(set(names)) != len(names):
            raise TaxonomyError(f"{owner}: duplicate part names in {names}")
        if not 0 < len(names) <= MAX_PARTS:
            raise TaxonomyError(f"{owner}: {len(names)} parts; give 1 to {MAX_PARTS}")
        if "background" in names:
            raise TaxonomyError(f"{owner}: 'background' is label 0 of every taxonomy, not a part")
        colors = tuple(tuple(c) for c in self.colors)
        if len(colors) != len(names):
            raise TaxonomyError(f"{owner}: {len(colors)} colors for {len(names)} parts")
        for c in colors:
            if len(c) != 3 or not all(
                isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in c
            ):
                raise TaxonomyError(f"{owner}: colour {c} is not an RGB triple of ints in 0..255")
        object.__setattr__(self, "colors", tuple(tuple(int(v) for v in c) for c in colors))
        pairs = _pairs(owner, "flip_pairs", self.flip_pairs)
        object.__setattr__(self, "flip_pairs", pairs)
        _check_flip_pairs(owner, names, pairs, "part")

    @property
    def num_parts(self) -> int:
        """Number of parts, background excluded."""
        return len(self.part_names)

    @property
    def num_classes(self) -> int:
        """Number of labels including background (0)."""
        return len(self.part_names) + 1

    @property
    def label_names(self) -> List[str]:
        """Names of all labels, index = label: ``["background", *part_names]``."""
        return ["background", *self.part_names]

    def label_of(self, part_name: str) -> int:
        """The label of ``part_name`` (1..num_parts); TaxonomyError naming the parts if unknown."""
        try:
            return self.part_names.index(part_name) + 1
        except ValueError:
            raise TaxonomyError(
                f"taxonomy {self.name!r} has no part {part_name!r}; parts: {list(self.part_names)}"
            ) from None

    def flip_lut(self) -> np.ndarray:
        """uint8 array (num_classes,): label -> label after a horizontal flip (left <-> right)."""
        lut = np.arange(self.num_classes, dtype=np.uint8)
        for a, b in self.flip_pairs:
            la, lb = self.label_of(a), self.label_of(b)
            lut[la], lut[lb] = lb, la
        return lut

    def palette(self) -> np.ndarray:
        """uint8 array (num_classes, 3) RGB, background black."""
        return np.array([(0, 0, 0), *self.colors], dtype=np.uint8)


@dataclass(frozen=True)
class KeypointTaxonomy:
    """Keypoint names, left/right flip map, skeleton and COCO OKS sigmas.

    Raises :class:`TaxonomyError` when malformed: duplicate or empty names, a flip pair naming an
    unknown keypoint (or one already paired), a skeleton edge naming an unknown keypoint, or OKS
    sigmas that are not one positive number per keypoint (none at all is allowed here, but
    :func:`register_keypoint_taxonomy` requires them: keypoint AP needs them).
    """

    name: str
    names: Tuple[str, ...]
    flip_map: Tuple[NamePair, ...]
    skeleton: Tuple[NamePair, ...]  # pairs of names joined by a line in visualizations
    oks_sigmas: Tuple[float, ...] = field(default=())

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TaxonomyError(f"a keypoint taxonomy needs a non-empty name, got {self.name!r}")
        owner = f"keypoint taxonomy {self.name!r}"
        names = _names(owner, "names", self.names)
        object.__setattr__(self, "names", names)
        if not names or len(set(names)) != len(names):
            raise TaxonomyError(f"{owner}: keypoint names must be unique and non-empty: {names}")
        flip_map = _pairs(owner, "flip_map", self.flip_map)
        object.__setattr__(self, "flip_map", flip_map)
        _check_flip_pairs(owner, names, flip_map, "keypoint")
        skeleton = _pairs(owner, "skeleton", self.skeleton)
        object.__setattr__(self, "skeleton", skeleton)
        for a, b in skeleton:
            for p in (a, b):
                if p not in names:
                    raise TaxonomyError(
                        f"{owner}: skeleton edge {(a, b)} names unknown keypoint {p!r}"
                    )
        sigmas = tuple(float(s) for s in self.oks_sigmas)
        object.__setattr__(self, "oks_sigmas", sigmas)
        if sigmas and (len(sigmas) != len(names) or not all(s > 0 for s in sigmas)):
            raise TaxonomyError(
                f"{owner}: oks_sigmas must be one positive number per keypoint "
                f"({len(names)}), got {list(sigmas)}"
            )

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def flip_indices(self) -> np.ndarray:
        """int64 array (K,): keypoint index -> index after a horizontal flip."""
        out = np.arange(self.num_keypoints, dtype=np.int64)
        for a, b in self.flip_map:
            ia, ib = self.names.index(a), self.names.index(b)
            out[ia], out[ib] = ib, ia
        return out

    def connection_rules(self) -> List[Tuple[str, str, RGB]]:
        """Detectron2's ``keypoint_connection_rules`` metadata (name, name, RGB)."""
        return [(a, b, (102, 204, 255)) for a, b in self.skeleton]


# ------------------------------------------------------------------------------------------------
# the registry


@dataclass
class _Registry:
    """What is registered in this process. Read through the read-only views below."""

    part_taxonomies: Dict[str, PartTaxonomy] = field(default_factory=dict)
    keypoint_taxonomies: Dict[str, KeypointTaxonomy] = field(default_factory=dict)
    # (source, target) -> {target part: (source parts)}
    part_mappings: Dict[NamePair, Mapping[str, Tuple[str, ...]]] = field(default_factory=dict)
    # (source, target) -> source parts sent to UNMAPPED_LABEL (only pairs that have some)
    part_unmapped: Dict[NamePair, Tuple[str, ...]] = field(default_factory=dict)
    # (source, target) -> {target keypoint: source keypoint}
    keypoint_mappings: Dict[NamePair, Mapping[str, str]] = field(default_factory=dict)


_REGISTRY = _Registry()

# Read-only, live views of the registry (they show later registrations too).
PART_TAXONOMIES: Mapping[str, PartTaxonomy] = MappingProxyType(_REGISTRY.part_taxonomies)
KEYPOINT_TAXONOMIES: Mapping[str, KeypointTaxonomy] = MappingProxyType(
    _REGISTRY.keypoint_taxonomies
)
# (source taxonomy, target taxonomy) -> {target part: (source parts)}. A target part not listed
# takes the source part of the same name, if any; a target part with no source makes the target
# inexpressible for that source. Source parts not listed map to background, except:
PART_MAPPINGS: Mapping[NamePair, Mapping[str, Tuple[str, ...]]] = MappingProxyType(
    _REGISTRY.part_mappings
)
# (source taxonomy, target taxonomy) -> source parts with no counterpart in the target: labels that
# cover several target parts (a dress holds torso and legs) or whose side is unknown (gloves).
# mapping_lut sends their pixels to UNMAPPED_LABEL (= contract.PART_IGNORE, 255: no loss, not
# scored), never to background. A part may not be both mapped and listed here.
PART_UNMAPPED: Mapping[NamePair, Tuple[str, ...]] = MappingProxyType(_REGISTRY.part_unmapped)
# (source keypoint taxonomy, target keypoint taxonomy) -> {target keypoint: source keypoint}.
# Target keypoints not listed take the source keypoint of the same name, if any; the others are
# unlabelled (visibility 0, no loss).
KEYPOINT_MAPPINGS: Mapping[NamePair, Mapping[str, str]] = MappingProxyType(
    _REGISTRY.keypoint_mappings
)


def get_part_taxonomy(name: str) -> PartTaxonomy:
    """The registered part taxonomy ``name``; TaxonomyError naming the known ones if unknown."""
    if name not in _REGISTRY.part_taxonomies:
        raise TaxonomyError(
            f"unknown part taxonomy {name!r}; known: {part_taxonomy_names()} "
            "(register your own with bodyparts.taxonomy.register_part_taxonomy)"
        )
    return _REGISTRY.part_taxonomies[name]


def get_keypoint_taxonomy(name: str) -> KeypointTaxonomy:
    """The registered keypoint taxonomy ``name``; TaxonomyError naming the known ones if unknown."""
    if name not in _REGISTRY.keypoint_taxonomies:
        raise TaxonomyError(
            f"unknown keypoint taxonomy {name!r}; known: {keypoint_taxonomy_names()} "
            "(register your own with bodyparts.taxonomy.register_keypoint_taxonomy)"
        )
    return _REGISTRY.keypoint_taxonomies[name]


def part_taxonomy_names() -> List[str]:
    """Sorted names of the registered part taxonomies."""
    return sorted(_REGISTRY.part_taxonomies)


def keypoint_taxonomy_names() -> List[str]:
    """Sorted names of the registered keypoint taxonomies."""
    return sorted(_REGISTRY.keypoint_taxonomies)


def _conflict(kind: str, name, old, new) -> TaxonomyError:
    if dataclasses.is_dataclass(old):
        fields = [
            f.name for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name)
        ]
        what = f"its {', '.join(fields)} differ"
    else:
        what = f"registered: {old}; new: {new}"
    return TaxonomyError(
        f"{kind} {name!r} is already registered with a different content ({what}); "
        "pick another name"
    )


def _checked_new(registry: Dict, kind: str, value) -> bool:
    """Whether ``value`` is new in ``registry`` (False: the same is registered, a no-op)."""
    old = registry.get(value.name)
    if old is None:
        return True
    if old != value:
        raise _conflict(kind, value.name, old, value)
    return False


# ------------------------------------------------------------------------------------------------
# part taxonomies and mappings


def register_part_taxonomy(
    taxonomy: Union[PartTaxonomy, str],
    part_names: Optional[Sequence[str]] = None,
    *,
    colors: Optional[Sequence[Sequence[int]]] = None,
    flip_pairs: Sequence[Sequence[str]] = (),
    description: str = "",
    mappings: Optional[Mapping[str, Mapping[str, Sequence[str]]]] = None,
    unmapped: Optional[Mapping[str, Sequence[str]]] = None,
) -> PartTaxonomy:
    """Register a part taxonomy (and its mappings into registered taxonomies) under its name.

    Either pass a :class:`PartTaxonomy`, or its fields::

        register_part_taxonomy(
            "arms4", ["head", "body", "left_arm", "right_arm"],
            flip_pairs=[("left_arm", "right_arm")],
            mappings={"lr6": {"torso": ["body"], "left_arm": ["left_arm"], ...}},
        )

    Args:
        taxonomy: a PartTaxonomy, or the name of a new one (then ``part_names`` is required).
        part_names: the parts in label order (label ``k + 1`` = ``part_names[k]``).
        colors: one RGB triple per part; default: :func:`palette_colors` ``(n, seed=n)``.
        flip_pairs: ``(left part, right part)`` pairs swapped by a horizontal flip.
        description: one line for humans.
        mappings: ``{target taxonomy: {target part: [parts of this taxonomy]}}`` for each
            registered taxonomy this one can be mapped to (see :func:`register_part_mapping`).
        unmapped: ``{target taxonomy: [parts of this taxonomy]}`` with no counterpart in the
            target: their pixels become 255 (no loss, not scored) instead of background.

    Returns:
        the registered taxonomy (the one already registered, when the call is a repeat).

    Raises:
        TaxonomyError: a malformed taxonomy or mapping, an unknown target, or the name (or a
            mapping) already registered with a different content. Nothing is registered then.
    """
    if isinstance(taxonomy, PartTaxonomy):
        if part_names is not None or colors is not None or flip_pairs or description:
            raise TypeError("register_part_taxonomy: pass a PartTaxonomy or its fields, not both")
    else:
        if part_names is None:
            raise TypeError(f"register_part_taxonomy({taxonomy!r}): part_names is required")
        part_names = _names(f"taxonomy {taxonomy!r}", "part_names", part_names)
        if colors is None:
            colors = palette_colors(len(part_names), len(part_names))
        taxonomy = PartTaxonomy(taxonomy, part_names, colors, flip_pairs, description)
    is_new = _checked_new(_REGISTRY.part_taxonomies, "part taxonomy", taxonomy)
    targets = sorted(set(mappings or {}) | set(unmapped or {}))
    prepared = [
        _prepared_part_mapping(
            taxonomy, get_part_taxonomy(t), (mappings or {}).get(t, {}), (unmapped or {}).get(t, ())
        )
        for t in targets
    ]
    if is_new:
        _REGISTRY.part_taxonomies[taxonomy.name] = taxonomy
    for args in prepared:
        _store_part_mapping(*args)
    return _REGISTRY.part_taxonomies[taxonomy.name]


def register_part_mapping(
    source: str,
    target: str,
    table: Mapping[str, Sequence[str]],
    *,
    unmapped: Sequence[str] = (),
) -> None:
    """Declare how labels of part taxonomy ``source`` map to part taxonomy ``target``.

    Args:
        source, target: names of registered part taxonomies (different ones: a taxonomy maps to
            itself by identity).
        table: ``{target part: [source parts]}``. A target part not listed takes the source part
            of the same name, if any; a target part with no source (or ``[]``) makes the target
            inexpressible from ``source`` (:func:`mapping_lut` then raises, naming it). A source
            part goes to at most one target part; source parts not mapped become background.
        unmapped: source parts with no counterpart in ``target`` (a dress in a torso/legs set, a
            glove whose side is unknown): their pixels become 255 (no loss, not scored).

    Raises:
        TaxonomyError: unknown taxonomies or parts, a source part mapped twice or both mapped and
            unmapped, a mapping that does not commute with the horizontal flip (a left part
            going to a right part, or its mirror elsewhere), or the pair already registered with
            a different table. Registering the same table again is a no-op.
    """
    prepared = _prepared_part_mapping(
        get_part_taxonomy(source), get_part_taxonomy(target), table, unmapped
    )
    _store_part_mapping(*prepared)


def _prepared_part_mapping(
    src: PartTaxonomy,
    dst: PartTaxonomy,
    table: Mapping[str, Sequence[str]],
    unmapped: Sequence[str],
) -> Tuple[NamePair, Mapping[str, Tuple[str, ...]], Tuple[str, ...]]:
    """Validate a mapping declaration; returns ``(pair, table, unmapped)`` normalised, ready to
    store (and checked against what is stored already)."""
    owner = f"mapping {src.name}->{dst.name}"
    if src.name == dst.name:
        raise TaxonomyError(f"{owner}: a taxonomy maps to itself by identity; nothing to declare")
    norm: Dict[str, Tuple[str, ...]] = {}
    where: Dict[str, str] = {}  # source part -> target part
    for dst_part, src_parts in table.items():
        if dst_part not in dst.part_names:
            raise TaxonomyError(
                f"{owner}: {dst.name!r} has no part {dst_part!r}; parts: {list(dst.part_names)}"
            )
        src_parts = _names(owner, f"the source parts of {dst_part!r}", src_parts)
        for sp in src_parts:
            if sp not in src.part_names:
                raise TaxonomyError(
                    f"{owner}: {src.name!r} has no part {sp!r}; parts: {list(src.part_names)}"
                )
            if sp in where:
                raise TaxonomyError(
                    f"{owner}: source part {sp!r} is mapped to both {where[sp]!r} and {dst_part!r}"
                )
            where[sp] = dst_part
        norm[dst_part] = src_parts
    unmapped = _names(owner, "unmapped", unmapped)
    for sp in unmapped:
        if sp not in src.part_names:
            raise TaxonomyError(
                f"{owner}: {src.name!r} has no part {sp!r}; parts: {list(src.part_names)}"
            )
    if len(set(unmapped)) != len(unmapped):
        raise TaxonomyError(f"{owner}: duplicate parts in unmapped {unmapped}")
    resolved = _resolve(src, dst, norm)
    twice = [p for p in dst.part_names if not norm.get(p) and p in where]
    if twice:
        raise TaxonomyError(
            f"{owner}: source parts {twice} are mapped explicitly ({[where[p] for p in twice]}) "
            "and also, by name, to the target part of the same name; declare that target part's "
            "sources explicitly"
        )
    both = sorted(set(unmapped) & {sp for sps in resolved.values() for sp in sps})
    if both:
        raise TaxonomyError(
            f"mapping {src.name}->{dst.name}: parts {both} are both mapped and unmapped"
        )
    _check_flip_commutes(owner, src, dst, _partial_lut(src, dst, resolved, unmapped))
    pair = (src.name, dst.name)
    new_table = MappingProxyType(norm)
    old_table, old_unmapped = (
        _REGISTRY.part_mappings.get(pair),
        _REGISTRY.part_unmapped.get(pair, ()),
    )
    if old_table is not None and (dict(old_table) != norm or old_unmapped != unmapped):
        raise _conflict(
            "part mapping",
            f"{src.name}->{dst.name}",
            (dict(old_table), old_unmapped),
            (norm, unmapped),
        )
    return pair, new_table, unmapped


def _store_part_mapping(
    pair: NamePair, table: Mapping[str, Tuple[str, ...]], unmapped: Tuple[str, ...]
) -> None:
    if pair in _REGISTRY.part_mappings:
        return  # the same table (checked by _prepared_part_mapping)
    _REGISTRY.part_mappings[pair] = table
    if unmapped:
        _REGISTRY.part_unmapped[pair] = unmapped


def _resolve(
    src: PartTaxonomy, dst: PartTaxonomy, table: Mapping[str, Sequence[str]]
) -> Dict[str, List[str]]:
    """``{target part: [source parts]}``: the declared table, plus parts of the same name."""
    out = {k: list(v) for k, v in table.items()}
    for part in dst.part_names:
        if not out.get(part) and part in src.part_names:
            out[part] = [part]
    return out


def _partial_lut(
    src: PartTaxonomy,
    dst: PartTaxonomy,
    resolved: Mapping[str, Sequence[str]],
    unmapped: Sequence[str],
) -> np.ndarray:
    """uint8 (source num_classes,): the LUT of a (possibly inexpressible) mapping."""
    lut = np.zeros(src.num_classes, dtype=np.uint8)
    for dst_part, src_parts in resolved.items():
        for sp in src_parts:
            lut[src.label_of(sp)] = dst.label_of(dst_part)
    for sp in unmapped:
        lut[src.label_of(sp)] = UNMAPPED_LABEL
    return lut


def uint8_lut(lut: np.ndarray, *, rest: str = "unmapped") -> np.ndarray:
    """The uint8 (256,) look-up table of every uint8 label value: ``lut`` (uint8 (C,)) for the
    values 0..C-1, and for the others ``UNMAPPED_LABEL`` (``rest="unmapped"``: a mapping to
    another taxonomy; 255 stays 255) or the value itself (``rest="identity"``: a flip). Indexing
    it with any uint8 label map is then safe: ``uint8_lut(lut)[label_map]``."""
    if rest not in ("unmapped", "identity"):
        raise ValueError(f"uint8_lut: rest must be 'unmapped' or 'identity', got {rest!r}")
    lut = np.asarray(lut)
    if lut.ndim != 1 or len(lut) > 256:
        raise ValueError(
            f"uint8_lut: a look-up table of shape {lut.shape}, expected (C,) with C <= 256"
        )
    if rest == "unmapped":
        full = np.full(256, UNMAPPED_LABEL, dtype=np.uint8)
    else:
        full = np.arange(256, dtype=np.uint8)
    full[: len(lut)] = lut
    return full


def _check_flip_commutes(owner: str, src: PartTaxonomy, dst: PartTaxonomy, lut: np.ndarray) -> None:
    """Mapping then flipping must equal flipping then mapping: otherwise a flipped training image
    teaches a left part as a right one."""
    dst_flip = uint8_lut(dst.flip_lut(), rest="identity")
    src_flip = src.flip_lut()
    names = ["background", *dst.part_names]

    def target(label: int) -> str:
        return "unmapped" if label == UNMAPPED_LABEL else repr(names[label])

    for label in range(1, src.num_classes):
        mirror = src_flip[label]
        if lut[mirror] != dst_flip[lut[label]]:
            raise TaxonomyError(
                f"{owner}: does not commute with a horizontal flip: {src.label_names[label]!r} -> "
                f"{target(lut[label])} but its mirror {src.label_names[mirror]!r} -> "
                f"{target(lut[mirror])} (expected {target(dst_flip[lut[label]])}); check the "
                "left/right parts of the table and the flip pairs of both taxonomies"
            )


def _missing_parts(source: str, target: str) -> List[str]:
    src, dst = get_part_taxonomy(source), get_part_taxonomy(target)
    table = _resolve(src, dst, _REGISTRY.part_mappings.get((source, target), {}))
    return [p for p in dst.part_names if not table.get(p)]


def can_express(source: str, target: str) -> bool:
    """Whether labels in taxonomy ``source`` can be mapped to every part of ``target``."""
    return not _missing_parts(source, target)


def mapping_lut(source: str, target: str, dataset: str = "") -> np.ndarray:
    """Label look-up table from ``source`` labels to ``target`` labels.

    Returns:
        uint8 array (num_classes of source,), ``lut[source_label] = target_label``; background and
        source parts that the mapping does not list map to 0, the parts of :data:`PART_UNMAPPED`
        to :data:`UNMAPPED_LABEL` (255, ignored). An ignore label 255 is kept as 255 by callers
        (index the LUT only with values < len(lut)).

    Raises:
        TaxonomyError: naming the dataset, both taxonomies and the target parts with no source.
    """
    src, dst = get_part_taxonomy(source), get_part_taxonomy(target)
    missing = _missing_parts(source, target)
    if missing:
        who = f"dataset {dataset!r} " if dataset else ""
        raise TaxonomyError(
            f"{who}with part taxonomy {source!r} cannot express taxonomy {target!r}: "
            f"no source parts for {missing}"
        )
    if source == target:
        return np.arange(src.num_classes, dtype=np.uint8)
    sources = _resolve(src, dst, _REGISTRY.part_mappings.get((source, target), {}))
    unmapped = _REGISTRY.part_unmapped.get((source, target), ())
    both = sorted(set(unmapped) & {p for parts in sources.values() for p in parts})
    if both:
        raise TaxonomyError(
            f"mapping {source}->{target}: parts {both} are both mapped and unmapped"
        )
    return _partial_lut(src, dst, sources, unmapped)


def unregister_part_taxonomy(name: str) -> None:
    """Remove a registered part taxonomy and every mapping from or to it (tests, notebooks).
    KeyError if it is not registered."""
    if name not in _REGISTRY.part_taxonomies:
        raise KeyError(f"part taxonomy {name!r} is not registered")
    del _REGISTRY.part_taxonomies[name]
    for pair in [p for p in _REGISTRY.part_mappings if name in p]:
        del _REGISTRY.part_mappings[pair]
        _REGISTRY.part_unmapped.pop(pair, None)


# ------------------------------------------------------------------------------------------------
# keypoint taxonomies and mappings


def register_keypoint_taxonomy(
    taxonomy: Union[KeypointTaxonomy, str],
    names: Optional[Sequence[str]] = None,
    *,
    flip_map: Sequence[Sequence[str]] = (),
    skeleton: Sequence[Sequence[str]] = (),
    oks_sigmas: Optional[Sequence[float]] = None,
    mappings: Optional[Mapping[str, Mapping[str, str]]] = None,
) -> KeypointTaxonomy:
    """Register a keypoint taxonomy (and its mappings into registered ones) under its name.

    Args:
        taxonomy: a KeypointTaxonomy, or the name of a new one (then ``names`` and ``oks_sigmas``
            are required).
        names: keypoint names in the order of the records' ``keypoints`` (K of them).
        flip_map: ``(left keypoint, right keypoint)`` pairs swapped by a horizontal flip.
        skeleton: pairs of keypoints joined by a line in visualizations.
        oks_sigmas: K positive COCO OKS sigmas (keypoint AP); required.
        mappings: ``{target keypoint taxonomy: {target keypoint: keypoint of this one}}``, see
            :func:`register_keypoint_mapping`.

    Returns:
        the registered taxonomy (the one already registered, when the call is a repeat).

    Raises:
        TaxonomyError: a malformed taxonomy or mapping, missing OKS sigmas, an unknown target, or
            the name (or a mapping) already registered with a different content.
    """
    if isinstance(taxonomy, KeypointTaxonomy):
        if names is not None or flip_map or skeleton or oks_sigmas is not None:
            raise TypeError(
                "register_keypoint_taxonomy: pass a KeypointTaxonomy or its fields, not both"
            )
    else:
        if names is None:
            raise TypeError(f"register_keypoint_taxonomy({taxonomy!r}): names is required")
        taxonomy = KeypointTaxonomy(taxonomy, names, flip_map, skeleton, oks_sigmas or ())
    if not taxonomy.oks_sigmas:
        raise TaxonomyError(
            f"keypoint taxonomy {taxonomy.name!r}: give oks_sigmas, one per keypoint "
            f"({taxonomy.num_keypoints}); COCO keypoint AP needs them"
        )
    is_new = _checked_new(_REGISTRY.keypoint_taxonomies, "keypoint taxonomy", taxonomy)
    prepared = [
        _prepared_keypoint_mapping(taxonomy, get_keypoint_taxonomy(t), table)
        for t, table in sorted((mappings or {}).items())
    ]
    if is_new:
        _REGISTRY.keypoint_taxonomies[taxonomy.name] = taxonomy
    for pair, table in prepared:
        _REGISTRY.keypoint_mappings.setdefault(pair, table)
    return _REGISTRY.keypoint_taxonomies[taxonomy.name]


def register_keypoint_mapping(source: str, target: str, table: Mapping[str, str]) -> None:
    """Declare how keypoints of ``source`` give those of ``target``: ``{target keypoint: source
    keypoint}``; target keypoints not listed take the source keypoint of the same name, if any,
    the others are unlabelled (v = 0, no loss). ``{}`` declares a by-name mapping.

    Raises:
        TaxonomyError: unknown taxonomies or keypoints, a source keypoint used twice, a mapping
            that does not commute with the horizontal flip, or the pair already registered with
            a different table. Registering the same table again is a no-op.
    """
    pair, table = _prepared_keypoint_mapping(
        get_keypoint_taxonomy(source), get_keypoint_taxonomy(target), table
    )
    _REGISTRY.keypoint_mappings.setdefault(pair, table)


def _prepared_keypoint_mapping(
    src: KeypointTaxonomy, dst: KeypointTaxonomy, table: Mapping[str, str]
) -> Tuple[NamePair, Mapping[str, str]]:
    owner = f"keypoint mapping {src.name}->{dst.name}"
    if src.name == dst.name:
        raise TaxonomyError(f"{owner}: a taxonomy maps to itself by identity; nothing to declare")
    norm = dict(table)
    for dst_kp, src_kp in norm.items():
        if dst_kp not in dst.names:
            raise TaxonomyError(f"{owner}: {dst.name!r} has no keypoint {dst_kp!r}")
        if src_kp not in src.names:
            raise TaxonomyError(f"{owner}: {src.name} has no keypoint {src_kp!r}")
    index = _keypoint_index(src, dst, norm)
    used = index[index >= 0]
    if len(set(used.tolist())) != len(used):
        raise TaxonomyError(f"{owner}: a source keypoint gives two target keypoints: {norm}")
    src_flip = np.append(src.flip_indices(), -1)  # index -1 (no source) stays -1
    if not (index[dst.flip_indices()] == src_flip[index]).all():
        raise TaxonomyError(
            f"{owner}: does not commute with a horizontal flip (a left keypoint from a right one, "
            f"or a keypoint and its mirror from sources that are not mirrors): {norm}"
        )
    pair = (src.name, dst.name)
    old = _REGISTRY.keypoint_mappings.get(pair)
    if old is not None and dict(old) != norm:
        raise _conflict("keypoint mapping", f"{src.name}->{dst.name}", dict(old), norm)
    return pair, MappingProxyType(norm)


def _keypoint_index(
    src: KeypointTaxonomy, dst: KeypointTaxonomy, table: Mapping[str, str]
) -> np.ndarray:
    out = np.full(dst.num_keypoints, -1, dtype=np.int64)
    for k, name in enumerate(dst.names):
        src_name = table.get(name, name if name in src.names else None)
        if src_name is not None:
            if src_name not in src.names:
                raise TaxonomyError(
                    f"keypoint mapping {src.name}->{dst.name}: "
                    f"{src.name} has no keypoint {src_name!r}"
                )
            out[k] = src.names.index(src_name)
    return out


def keypoint_index_map(source: str, target: str) -> np.ndarray:
    """Where each ``target`` keypoint comes from in ``source``.

    Returns:
        int64 array (K_target,): index into the source keypoints, or -1 when the source has no
        such keypoint (it is then unlabelled: visibility 0, no loss).
    """
    src, dst = get_keypoint_taxonomy(source), get_keypoint_taxonomy(target)
    return _keypoint_index(src, dst, _REGISTRY.keypoint_mappings.get((source, target), {}))


def unregister_keypoint_taxonomy(name: str) -> None:
    """Remove a registered keypoint taxonomy and every mapping from or to it (tests, notebooks).
    KeyError if it is not registered."""
    if name not in _REGISTRY.keypoint_taxonomies:
        raise KeyError(f"keypoint taxonomy {name!r} is not registered")
    del _REGISTRY.keypoint_taxonomies[name]
    for pair in [p for p in _REGISTRY.keypoint_mappings if name in p]:
        del _REGISTRY.keypoint_mappings[pair]
