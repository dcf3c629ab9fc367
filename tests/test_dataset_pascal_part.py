"""PASCAL-Part (person) and Pascal-Person-Part loaders: native-layout fixtures with known content,
bad inputs, the record cache, registration, and the real sample files in ../shared/realdata."""

import os

import numpy as np
import pytest
import scipy.io
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from fixtures.pascal_part import (
    EXPECTED_PRIORITY,
    FixtureObject,
    image_b,
    rect,
    write_image,
    write_jpeg,
    write_mat,
    write_pascal_part_fixture,
)
from PIL import Image

from bodyparts.data.contract import DataContractError, decode_rle, part_label_map, validate_record
from bodyparts.data.datasets.native import DatasetFormatError, LoadReport
from bodyparts.data.datasets.pascal_part import (
    COMPLETE_COVERAGE,
    PART_PRIORITY,
    load_pascal_part,
    load_pascal_person_part,
    read_id_list,
    register_all_pascal_part,
)
from bodyparts.taxonomy import PASCAL_PART24, get_part_taxonomy, mapping_lut

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = os.path.normpath(os.path.join(REPO, "..", "shared", "realdata", "pascal_part"))
L = {name: PASCAL_PART24.label_of(name) for name in PASCAL_PART24.part_names}


def _dirs(root):
    return os.path.join(str(root), "Annotations_Part"), os.path.join(str(root), "JPEGImages")


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pascal_part")
    expected = write_pascal_part_fixture(str(root))
    records = load_pascal_part(*_dirs(root), use_cache=False)
    return root, expected, {r["image_id"]: r for r in records}


def _label_maps(record):
    return [part_label_map(a, record["height"], record["width"]) for a in record["annotations"]]


# ---- fixture content


def test_one_record_per_image_with_persons(fixture_data):
    root, expected, records = fixture_data
    assert sorted(records) == ["2008_000001", "2008_000002"]  # 2009_000003 has no person
    rec = records["2008_000001"]
    assert rec["part_taxonomy"] == "pascal_part24"
    assert (rec["height"], rec["width"]) == (48, 64)
    assert rec["file_name"] == os.path.join(str(root), "JPEGImages", "2008_000001.jpg")
    for r in records.values():
        validate_record(r, num_classes=1, num_parts=24)


def test_persons_boxes_and_silhouettes(fixture_data):
    _, expected, records = fixture_data
    for image_id, rec in records.items():
        persons = expected[image_id].persons
        # image A: persons A, B and C (empty part list); D (empty mask) is dropped
        assert (
            len(rec["annotations"])
            == len(persons)
            == {"2008_000001": 3, "2008_000002": 1}[image_id]
        )
        for ann, exp in zip(rec["annotations"], persons):
            assert ann["bbox_mode"] == BoxMode.XYWH_ABS and ann["category_id"] == 0
            assert ann["bbox"] == exp.bbox
            np.testing.assert_array_equal(
                decode_rle(ann["segmentation"]).astype(bool), exp.silhouette
            )
    assert records["2008_000001"]["annotations"][0]["bbox"] == [8.0, 4.0, 20.0, 40.0]


def test_part_labels_are_disjoint_with_fixed_priority(fixture_data):
    _, expected, records = fixture_data
    assert list(PART_PRIORITY) == EXPECTED_PRIORITY
    rec = records["2008_000001"]
    maps = _label_maps(rec)
    for m, exp in zip(maps, expected["2008_000001"].persons):
        if exp.labels is not None:
            np.testing.assert_array_equal(m, exp.labels)
    a = maps[0]
    assert a[5, 15] == L["hair"]  # hair comes before head in the file; priority, not file order
    assert a[8, 15] == L["leye"] and a[8, 20] == L["reye"]  # eyes inside the head
    assert a[10, 15] == L["head"]
    assert a[13, 18] == L["head"] and a[15, 18] == L["neck"]  # head > neck > torso
    assert a[20, 15] == L["torso"]
    assert a[16, 27] == L["luarm"] and a[23, 27] == L["llarm"] and a[29, 27] == L["lhand"]
    assert a[20, 28] == 0 and a[20, 29] == 0  # torso pixels outside the silhouette are dropped
    assert a[35, 15] == 0  # inside the silhouette, no part (legs unlabelled)
    sil = decode_rle(rec["annotations"][0]["segmentation"]).astype(bool)
    assert not a[~sil].any()


def test_parts_none_and_completeness(fixture_data):
    _, _, records = fixture_data
    a, b, c = records["2008_000001"]["annotations"]
    assert a["parts_complete"] is False  # legs unlabelled: (380 labelled) / 800 pixels < 95 %
    assert b["parts_complete"] is True  # parts cover the whole silhouette
    assert c["parts"] is None and "parts_complete" not in c
    single = records["2008_000002"]["annotations"][0]
    assert sorted(single["parts"]) == [L["torso"]] and single["parts_complete"] is False
    assert COMPLETE_COVERAGE == 0.95


def test_non_person_pixels_never_labelled(fixture_data):
    _, expected, records = fixture_data
    objects = expected["2008_000001"].objects
    others = np.zeros((48, 64), bool)
    for o in objects:
        if o.cls != "person":
            others |= o.mask.astype(bool)
    rec = records["2008_000001"]
    for ann, m in zip(rec["annotations"], _label_maps(rec)):
        assert not (decode_rle(ann["segmentation"]).astype(bool) & others).any()
        assert not ((m > 0) & (m != 255) & others).any()


def test_flip_pairs_and_split_metadata(tmp_path):
    root = str(tmp_path)
    names = _register(root)
    try:
        meta = MetadataCatalog.get("pascal_part_person_train")
        assert meta.part_taxonomy == "pascal_part24" and meta.part_names == list(
            PASCAL_PART24.part_names
        )
        assert ("leye", "reye") in meta.part_flip_pairs and (
            "lhand",
            "rhand",
        ) in meta.part_flip_pairs
        assert len(meta.part_flip_pairs) == 9
        assert not hasattr(meta, "keypoint_names") and not hasattr(meta, "default_part_taxonomy")
        lut = get_part_taxonomy("pascal_part24").flip_lut()
        assert (
            lut[L["lhand"]] == L["rhand"]
            and lut[L["leye"]] == L["reye"]
            and lut[L["head"]] == L["head"]
        )
        ppp = MetadataCatalog.get("pascal_person_part_val")
        assert ppp.default_part_taxonomy == "ppp6" and ppp.part_taxonomy == "pascal_part24"
        assert ppp.split_file.endswith(
            os.path.join("pascal_person_part_trainval_list", "val_id.txt")
        )
    finally:
        _unregister(names)


def test_mapping_of_known_pixels(fixture_data):
    _, _, records = fixture_data
    a, b, _ = _label_maps(records["2008_000001"])
    ppp, lr6, fine = (mapping_lut("pascal_part24", t) for t in ("ppp6", "lr6", "fine_lr"))
    names = {t: get_part_taxonomy(t).label_names for t in ("ppp6", "lr6", "fine_lr")}
    assert names["ppp6"][ppp[a[15, 18]]] == "torso"  # neck -> torso
    assert names["ppp6"][ppp[a[5, 15]]] == "head"  # hair -> head
    assert names["ppp6"][ppp[a[29, 27]]] == "lower_arms"  # hand -> lower arms
    assert names["lr6"][lr6[a[29, 27]]] == "left_arm"
    assert names["ppp6"][ppp[b[33, 54]]] == "upper_legs"
    assert names["lr6"][lr6[b[33, 54]]] == "left_leg"
    assert names["fine_lr"][fine[b[38, 60]]] == "right_lower_leg"


# ---- bad input


def _person(h, w, **kw):
    return FixtureObject(
        "person", rect(h, w, 2, 20, 2, 20), [("torso", rect(h, w, 5, 15, 2, 20))], **kw
    )


def _bad_truncated(anno, img):
    write_image(os.path.dirname(anno), image_b())
    path = os.path.join(anno, "2008_000002.mat")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    return "2008_000002", ".mat", "truncated or corrupt"


def _bad_garbage(anno, img):
    write_jpeg(os.path.join(img, "x.jpg"), 24, 24)
    os.makedirs(anno, exist_ok=True)
    open(os.path.join(anno, "x.mat"), "w").write("not a MATLAB file\n" * 20)
    return "x", ".mat", "truncated or corrupt"


def _bad_no_anno(anno, img):
    write_jpeg(os.path.join(img, "x.jpg"), 24, 24)
    os.makedirs(anno, exist_ok=True)
    scipy.io.savemat(
        os.path.join(anno, "x.mat"), {"annotation": np.zeros((2, 2))}, do_compression=True
    )
    return "x", ".mat", "no variable 'anno'"


def _bad_mask_size(anno, img):
    write_jpeg(os.path.join(img, "x.jpg"), 24, 24)
    write_mat(
        os.path.join(anno, "x.mat"), "x", [FixtureObject("person", rect(25, 24, 2, 20, 2, 20))]
    )
    return "x", ".mat", "anno.objects(1).mask has size 25x24 (HxW) but the image"


def _bad_part_mask_size(anno, img):
    write_jpeg(os.path.join(img, "x.jpg"), 24, 24)
    obj = FixtureObject("person", rect(24, 24, 2, 20, 2, 20), [("head", rect(24, 30, 2, 5, 2, 5))])
    write_mat(os.path.join(anno, "x.mat"), "x", [obj])
    return "x", ".mat", "anno.objects(1).parts(1).mask (head) has size 24x30"


def _bad_part_name(anno, img):
    write_jpeg(os.path.join(img, "x.jpg"), 24, 24)
    cat = FixtureObject("cat", rect(24, 24, 20, 24, 0, 5), [("tail", rect(24, 24, 20, 24, 0, 5))])
    obj = FixtureObject(
        "person",
        rect(24, 24, 2, 20, 2, 20),
        [("head", rect(24, 24, 2, 5, 2, 5)), ("tail", rect(24, 24, 5, 9, 2, 5))],
    )
    write_mat(os.path.join(anno, "x.mat"), "x", [cat, obj])  # the cat's 'tail' is fine
    return (
        "x",
        ".mat",
        "anno.objects(2) (person): unknown part name 'tail' in anno.objects(2).parts(2)",
    )


def _bad_missing_jpeg(anno, img):
    write_mat(os.path.join(anno, "x.mat"), "x", [_person(24, 24)])
    return "x", ".jpg", "image file not found"


def _bad_class_ind(anno, img):
    write_jpeg(os.path.join(img, "x.jpg"), 24, 24)
    write_mat(os.path.join(anno, "x.mat"), "x", [_person(24, 24, class_ind=12)])
    return "x", ".mat", "anno.objects(1): class 'person' disagrees with class_ind 12"


def _bad_imname(anno, img):
    write_jpeg(os.path.join(img, "x.jpg"), 24, 24)
    write_mat(os.path.join(anno, "x.mat"), "2008_999999", [_person(24, 24)])
    return "x", ".mat", "anno.imname '2008_999999' differs from the file name 'x'"


BAD = [
    _bad_truncated,
    _bad_garbage,
    _bad_no_anno,
    _bad_mask_size,
    _bad_part_mask_size,
    _bad_part_name,
    _bad_missing_jpeg,
    _bad_class_ind,
    _bad_imname,
]


@pytest.mark.parametrize("make_bad", BAD, ids=[f.__name__[5:] for f in BAD])
def test_bad_input_names_file_and_problem(tmp_path, make_bad):
    anno, img = _dirs(tmp_path)
    image_id, ext, problem = make_bad(anno, img)
    with pytest.raises(DatasetFormatError) as e:
        load_pascal_part(anno, img, [image_id])
    assert e.value.path == os.path.join(anno if ext == ".mat" else img, image_id + ext)
    assert problem in e.value.problem


def test_listed_id_without_annotation_file(tmp_path):
    anno, img = _dirs(tmp_path)
    os.makedirs(anno)
    with pytest.raises(DatasetFormatError, match="annotation file not found") as e:
        load_pascal_part(anno, img, ["2008_000123"])
    assert e.value.path == os.path.join(anno, "2008_000123.mat")
    with pytest.raises(DatasetFormatError, match="annotation directory not found"):
        load_pascal_part(os.path.join(str(tmp_path), "nowhere"), img)


def test_parts_outside_silhouette_give_no_part_labels(tmp_path):
    anno, img = _dirs(tmp_path)
    write_jpeg(os.path.join(img, "x.jpg"), 24, 24)
    write_mat(
        os.path.join(anno, "x.mat"),
        "x",
        [
            FixtureObject(
                "person", rect(24, 24, 2, 10, 2, 10), [("head", rect(24, 24, 12, 20, 12, 20))]
            )
        ],
    )
    (rec,) = load_pascal_part(anno, img)
    assert rec["annotations"][0]["parts"] is None


def test_skip_bad_items_and_count(tmp_path):
    root = str(tmp_path)
    anno, img = _dirs(root)
    write_pascal_part_fixture(root)
    write_mat(os.path.join(anno, "y1.mat"), "y1", [_person(24, 24)])  # no JPEG
    write_jpeg(os.path.join(img, "y2.jpg"), 24, 24)
    write_mat(os.path.join(anno, "y2.mat"), "y2", [_person(24, 24, class_ind=3)])
    open(os.path.join(anno, "y3.mat"), "wb").write(b"MATLAB 5.0 MAT-file" + bytes(50))
    for attempt in ("cold", "warm"):
        report = LoadReport()
        records = load_pascal_part(anno, img, on_error="skip", report=report)
        assert [r["image_id"] for r in records] == ["2008_000001", "2008_000002"]
        assert [k for k, _ in report.skipped] == ["y1", "y2", "y3"]
        assert report.num_items == 6 and report.num_records == 2
        assert report.num_cached == (0 if attempt == "cold" else 6)
    # a cached skip re-raises as the base DataContractError with the same message
    with pytest.raises(DataContractError, match="y1.jpg: image file not found"):
        load_pascal_part(anno, img)


def test_cache_hit_and_invalidation(tmp_path):
    root = str(tmp_path)
    anno, img = _dirs(root)
    write_pascal_part_fixture(root)
    first, report = load_pascal_part(anno, img, report=LoadReport()), LoadReport()
    second = load_pascal_part(anno, img, report=report)
    assert report.num_cached == report.num_items == 3 and report.num_parsed == 0
    assert second == first
    mat_b = os.path.join(anno, "2008_000002.mat")
    st = os.stat(mat_b)
    os.utime(mat_b, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touch
    third = load_pascal_part(anno, img, report=report)
    assert report.num_parsed == 1 and report.num_cached == 2 and third == first
    # change the content: person B of image 2 now has a head instead of a torso
    h, w = 40, 30
    write_mat(
        mat_b,
        "2008_000002",
        [FixtureObject("person", rect(h, w, 5, 35, 5, 25), [("head", rect(h, w, 5, 35, 5, 25))])],
    )
    fourth = {r["image_id"]: r for r in load_pascal_part(anno, img, report=report)}
    assert report.num_parsed == 1
    ann = fourth["2008_000002"]["annotations"][0]
    assert sorted(ann["parts"]) == [L["head"]] and ann["parts_complete"] is True
    # a changed JPEG re-reads its item too
    write_jpeg(os.path.join(img, "2008_000001.jpg"), 48, 64)
    load_pascal_part(anno, img, report=report)
    assert report.num_parsed == 1 and report.num_cached == 2


# ---- Pascal-Person-Part lists and registration


def test_id_lists_both_forms(tmp_path):
    root = str(tmp_path)
    anno, img = _dirs(root)
    write_pascal_part_fixture(root)
    ids_file, pairs_file = os.path.join(root, "train_id.txt"), os.path.join(root, "train.txt")
    open(ids_file, "w").write("2008_000002\n\n2008_000001\n")
    open(pairs_file, "w").write(
        "/JPEGImages/2008_000002.jpg /SegmentationPart/2008_000002.png\n"
        "/JPEGImages/2008_000001.jpg /SegmentationPart/2008_000001.png\n"
    )
    assert read_id_list(ids_file) == read_id_list(pairs_file) == ["2008_000002", "2008_000001"]
    records = load_pascal_person_part(anno, img, pairs_file)
    assert [r["image_id"] for r in records] == ["2008_000002", "2008_000001"]
    assert records == load_pascal_person_part(anno, img, ids_file)
    open(ids_file, "a").write("2008_000002\n")
    with pytest.raises(
        DatasetFormatError, match="line 4: id '2008_000002' already listed on line 1"
    ):
        read_id_list(ids_file)
    open(pairs_file, "w").write("a/2008_000002.jpg b/2008_000003.png\n")
    with pytest.raises(DatasetFormatError, match="line 1: expected"):
        read_id_list(pairs_file)
    with pytest.raises(DatasetFormatError, match="split list file not found"):
        read_id_list(os.path.join(root, "val_id.txt"))


SPLIT_NAMES = [
    "pascal_part_person_train",
    "pascal_part_person_val",
    "pascal_person_part_train",
    "pascal_person_part_val",
]


def _register(root):
    """Write the expected tree under ``root`` and register it; returns what was registered."""
    previous = {
        n: MetadataCatalog.get(n).get("dataset_root")
        for n in SPLIT_NAMES
        if n in DatasetCatalog.list()
    }
    write_pascal_part_fixture(
        root,
        os.path.join("pascal_part", "Annotations_Part"),
        os.path.join("VOCdevkit", "VOC2010", "JPEGImages"),
    )
    main = os.path.join(root, "VOCdevkit", "VOC2010", "ImageSets", "Main")
    lists = os.path.join(root, "pascal_person_part", "pascal_person_part_trainval_list")
    for folder, name, text in [
        (main, "train.txt", "2008_000001\n2008_000005\n2009_000003\n"),  # 2008_000005: no .mat
        (main, "val.txt", "2008_000002\n"),
        (lists, "train_id.txt", "2008_000002\n2008_000001\n"),
        (lists, "val_id.txt", "2008_000001\n"),
    ]:
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, name), "w").write(text)
    assert register_all_pascal_part(root) == SPLIT_NAMES
    return previous


def _unregister(previous):
    for name in SPLIT_NAMES:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    for root in set(previous.values()):
        register_all_pascal_part(root)  # restore what was registered before the test


def test_register_all_splits(tmp_path):
    previous = _register(str(tmp_path))
    try:
        ids = {n: [r["image_id"] for r in DatasetCatalog.get(n)] for n in SPLIT_NAMES}
        assert ids == {
            "pascal_part_person_train": ["2008_000001"],  # 2009_000003 has no person
            "pascal_part_person_val": ["2008_000002"],
            "pascal_person_part_train": ["2008_000002", "2008_000001"],
            "pascal_person_part_val": ["2008_000001"],
        }
        meta = MetadataCatalog.get("pascal_person_part_train")
        assert meta.anno_dir == os.path.join(str(tmp_path), "pascal_part", "Annotations_Part")
        assert meta.evaluator_type == "bodyparts" and meta.thing_classes == ["person"]
    finally:
        _unregister(previous)


# ---- the real sample files

needs_real = pytest.mark.skipif(
    not os.path.isdir(os.path.join(REAL, "Annotations_Part")),
    reason=f"real PASCAL-Part samples not found at {REAL} (../shared/realdata/pascal_part)",
)
REAL_PERSONS = {"2008_000652": 1, "2008_000726": 2, "2008_003228": 3, "2010_002526": 3}


@pytest.fixture(scope="module")
def real_records():
    return {r["image_id"]: r for r in load_pascal_part(*_dirs(REAL), use_cache=False)}


def _raw_persons(image_id):
    """Person objects read directly (squeeze_me / mat_struct mode, unlike the loader)."""
    d = scipy.io.loadmat(
        os.path.join(REAL, "Annotations_Part", image_id + ".mat"),
        squeeze_me=True,
        struct_as_record=False,
    )
    objs = np.atleast_1d(d["anno"].objects)
    return [o for o in objs if o.class_ind == 15]


def _raw_parts(obj):
    return [(p.part_name, p.mask.astype(bool)) for p in np.atleast_1d(obj.parts)]


@needs_real
def test_real_person_counts_and_part_names(real_records):
    assert {k: len(r["annotations"]) for k, r in real_records.items()} == REAL_PERSONS
    assert [len(_raw_parts(o)) for o in _raw_persons("2008_000652")] == [18]
    assert [len(_raw_parts(o)) for o in _raw_persons("2008_000726")] == [3, 13]
    for image_id, rec in real_records.items():
        for ann, obj in zip(rec["annotations"], _raw_persons(image_id)):
            names = {n for n, _ in _raw_parts(obj)}
            assert names <= set(PASCAL_PART24.part_names)
            assert sorted(ann["parts"]) == sorted(L[n] for n in names)  # no part lost to overlaps


@needs_real
def test_real_silhouettes_boxes_and_sizes(real_records):
    for image_id, rec in real_records.items():
        w, h = Image.open(os.path.join(REAL, "JPEGImages", image_id + ".jpg")).size
        assert (rec["height"], rec["width"]) == (h, w)
        validate_record(rec, num_classes=1, num_parts=24)
        for ann, obj in zip(rec["annotations"], _raw_persons(image_id)):
            sil = decode_rle(ann["segmentation"]).astype(bool)
            np.testing.assert_array_equal(sil, obj.mask.astype(bool))
            ys, xs = np.nonzero(sil)
            assert ann["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() + 1 - xs.min(),
                ys.max() + 1 - ys.min(),
            ]
            labels = part_label_map(ann, h, w)
            assert not labels[~sil].any()
            assert ann["parts_complete"] == ((labels > 0).sum() >= COMPLETE_COVERAGE * sil.sum())


@needs_real
def test_real_image_checked_independently(real_records):
    rec = real_records["2008_003228"]
    rank = {n: i for i, n in enumerate(EXPECTED_PRIORITY)}
    for ann, obj in zip(rec["annotations"], _raw_persons("2008_003228")):
        labels = part_label_map(ann, rec["height"], rec["width"])
        raw = _raw_parts(obj)
        sil = obj.mask.astype(bool)
        covering = np.zeros(labels.shape, np.int32)
        for name, mask in raw:
            assert (labels[labels == L[name]] > 0).all() and mask[labels == L[name]].all()
            covering += mask & sil
        assert ((labels > 0) == (covering > 0)).all()
        for name, mask in raw:  # where one part alone covers a pixel, it is that part
            alone = mask & (covering == 1)
            assert (labels[alone] == L[name]).all()
        ys, xs = np.nonzero(covering > 1)
        assert len(ys) > 0  # the face parts overlap the head
        for y, x in zip(ys[::7], xs[::7]):
            winner = max((n for n, m in raw if m[y, x]), key=rank.get)
            assert labels[y, x] == L[winner]
