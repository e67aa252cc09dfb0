"""ImageStore (zips and folders in the official layout) and the image transforms, on real BIOSCAN crops."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bioscan5m.data.images import (
    IMAGES_SUBDIR,
    ImageStore,
    image_path,
    load_zip_index,
    read_zip_index,
    to_rgb,
)
from bioscan5m.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    RandomResizedCrop,
    ResizeShorterSide,
    ToTensor,
    image_transform,
)
from bioscan5m.errors import BioscanError

PACKAGE = "cropped_256"
PREFIX = f"{IMAGES_SUBDIR}/{PACKAGE}/"
SPLIT_PLACES = [("train", "0"), ("train", "f"), ("val", None), ("test", ""), ("pretrain", "00"),
                ("key_unseen", None)]


def real_images(shared_data: Path) -> list[Path]:
    """Every real BIOSCAN image staged in shared/data (crops and originals), sorted."""
    return sorted(shared_data.glob("bioscan*_images/*/*.jpg"))


def vendored_crops(vendored_data: Path) -> list[Path]:
    """The 10 real BIOSCAN-1M crops vendored in tests/fixtures (5 specimens, each cropped and cropped-resized), sorted."""
    return sorted(vendored_data.glob("bioscan1m_crops/*.jpg"))


def processid_of(file: Path) -> str:
    return file.name.split(".")[0]


@pytest.fixture(scope="module")
def layout(vendored_data, tmp_path_factory):
    """A dataset root with 10 real crops as zips (stored and deflated members, three zips) and the same
    images extracted into a second root's folder; returns (zip_root, folder_root, {processid: (split, chunk, file)})."""
    files = vendored_crops(vendored_data)
    places = {processid_of(f): (*SPLIT_PLACES[i % len(SPLIT_PLACES)], f) for i, f in enumerate(files)}
    zip_root = tmp_path_factory.mktemp("zips")
    folder_root = tmp_path_factory.mktemp("folder")
    archives = {
        "train": zipfile.ZipFile(zip_root / "BIOSCAN_5M_cropped_256_train.zip", "w"),
        "eval": zipfile.ZipFile(zip_root / "BIOSCAN_5M_cropped_256_eval.zip", "w"),
        "pretrain": zipfile.ZipFile(zip_root / "BIOSCAN_5M_cropped_256_pretrain.01.zip", "w"),
    }
    for i, (pid, (split, chunk, file)) in enumerate(places.items()):
        member = PREFIX + image_path(split, chunk, pid)
        archive = archives.get(split, archives["eval"])
        archive.write(file, member, compress_type=zipfile.ZIP_DEFLATED if i % 2 else zipfile.ZIP_STORED)
        target = folder_root / member
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
    for archive in archives.values():
        archive.writestr(PREFIX, b"")  # a directory entry, as real zips have
        archive.close()
    return zip_root, folder_root, places


def test_image_path_omits_empty_chunk():
    assert image_path("train", "0", "AACTA1026-20") == "train/0/AACTA1026-20.jpg"
    assert image_path("val", None, "AACTA161-20") == "val/AACTA161-20.jpg"
    assert image_path("test", "", "X") == "test/X.jpg"
    assert image_path("test", float("nan"), "X") == "test/X.jpg"


@pytest.mark.parametrize("which", ["zips", "folder"])
def test_store_loads_the_exact_pixels(layout, which):
    zip_root, folder_root, places = layout
    store = ImageStore.open(zip_root if which == "zips" else folder_root, PACKAGE)
    for pid, (split, chunk, file) in places.items():
        image = store.load(pid, split, chunk)
        assert image.mode == "RGB"
        with Image.open(file) as direct:
            np.testing.assert_array_equal(np.asarray(image), np.asarray(direct.convert("RGB")))
        assert store.read_bytes(pid, split, chunk) == file.read_bytes()
    assert len(store) == (len(places) if which == "zips" else 0)


def test_store_finds_images_by_processid_alone(layout):
    zip_root, folder_root, places = layout
    pid, (_, _, file) = next(iter(places.items()))
    for root in (zip_root, folder_root):
        store = ImageStore.open(root, PACKAGE)
        assert store.read_bytes(pid) == file.read_bytes()
        assert pid in store
        assert "NOPE1-20" not in store


def test_zip_index_matches_zipfile(layout):
    zip_root, _, _ = layout
    path = zip_root / "BIOSCAN_5M_cropped_256_eval.zip"
    index = read_zip_index(path, PREFIX)
    with zipfile.ZipFile(path) as archive:
        infos = sorted((i for i in archive.infolist() if not i.is_dir()), key=lambda i: i.filename)
    assert [PREFIX + n.decode() for n in index.names] == [i.filename for i in infos]
    assert index.offsets.tolist() == [i.header_offset for i in infos]
    assert index.sizes.tolist() == [i.file_size for i in infos]
    assert index.crcs.tolist() == [i.CRC for i in infos]


def test_zip64_archive_with_prepended_bytes(tmp_path, monkeypatch, vendored_data):
    """Zip64 records (here forced by tiny limits) and a self-extractor stub before the archive."""
    files = vendored_crops(vendored_data)[:6]
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1000)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        for file in files:
            archive.write(file, PREFIX + image_path("train", "3", processid_of(file)))
    monkeypatch.undo()
    root = tmp_path / "root"
    root.mkdir()
    (root / "BIOSCAN_5M_cropped_256.zip").write_bytes(b"#!stub\n" * 100 + plain.read_bytes())
    store = ImageStore.open(root, PACKAGE, use_cache=False)
    assert len(store) == 6
    assert all(store.read_bytes(processid_of(f), "train", "3") == f.read_bytes() for f in files)


def test_index_is_cached_in_the_cache_root_and_refreshed_when_the_zip_changes(tmp_path, vendored_data, monkeypatch):
    monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", str(tmp_path / "cache-root"))
    files = vendored_crops(vendored_data)[:3]
    root = tmp_path / "root"
    root.mkdir()
    zip_path = root / "BIOSCAN_5M_cropped_256_train.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for file in files[:2]:
            archive.write(file, PREFIX + image_path("train", "0", processid_of(file)))
    first = load_zip_index(zip_path, PREFIX)
    caches = list((tmp_path / "cache-root" / "zip-index").glob("BIOSCAN_5M_cropped_256_train.zip.*.npz"))
    assert len(caches) == 1
    assert os.listdir(root) == [zip_path.name]  # nothing beside the zip
    again = load_zip_index(zip_path, PREFIX)
    assert again.names.tolist() == first.names.tolist() and again.offsets.tolist() == first.offsets.tolist()
    with zipfile.ZipFile(zip_path, "a") as archive:
        archive.write(files[2], PREFIX + image_path("train", "0", processid_of(files[2])))
    assert len(ImageStore.open(root, PACKAGE)) == 3
    separate = tmp_path / "cache"
    load_zip_index(zip_path, PREFIX, cache_dir=separate)
    assert len(list((separate / "zip-index").glob("*.npz"))) == 1


def _one_crop_zip(tmp_path, vendored_data):
    """A cropped_256 eval zip holding one real crop as val/P1.jpg."""
    zip_path = tmp_path / "BIOSCAN_5M_cropped_256_eval.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.write(vendored_crops(vendored_data)[0], PREFIX + image_path("val", None, "P1"))
    return zip_path


def test_damaged_index_cache_is_read_again_from_the_zip(tmp_path, vendored_data):
    zip_path = _one_crop_zip(tmp_path, vendored_data)
    cache = tmp_path / "cache"
    load_zip_index(zip_path, PREFIX, cache_dir=cache)
    [saved] = (cache / "zip-index").glob("*.npz")
    data = saved.read_bytes()
    for damaged in (data[: len(data) // 2], b"", b"PK\x03\x04 not a zip"):
        saved.write_bytes(damaged)
        assert load_zip_index(zip_path, PREFIX, cache_dir=cache).names.tolist() == [b"val/P1.jpg"]
        assert saved.read_bytes() == data  # rewritten whole


def test_unwritable_cache_location_is_skipped(tmp_path, vendored_data):
    zip_path = _one_crop_zip(tmp_path, vendored_data)
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    index = load_zip_index(zip_path, PREFIX, cache_dir=blocker)
    assert index.names.tolist() == [b"val/P1.jpg"]


def test_missing_image_names_processid_and_places(layout):
    zip_root, folder_root, _ = layout
    with pytest.raises(BioscanError) as error:
        ImageStore.open(zip_root, PACKAGE).load("ABSENT1-22", "train", "0")
    message = str(error.value)
    assert "'ABSENT1-22'" in message
    assert "BIOSCAN_5M_cropped_256_train.zip:bioscan5m/images/cropped_256/train/0/ABSENT1-22.jpg" in message
    assert "BIOSCAN_5M_cropped_256_eval.zip" in message
    with pytest.raises(BioscanError, match=r"images/cropped_256/val/ABSENT2-22\.jpg"):
        ImageStore.open(folder_root, PACKAGE).load("ABSENT2-22", "val", None)
    with pytest.raises(BioscanError, match=r"\*/ABSENT3-22\.jpg"):
        ImageStore.open(zip_root, PACKAGE).load("ABSENT3-22")


def test_no_package_and_unknown_package(layout, tmp_path):
    zip_root, _, _ = layout
    with pytest.raises(BioscanError, match=r"no cropped images found.*BIOSCAN_5M_cropped\*\.zip"):
        ImageStore.open(zip_root, "cropped")  # cropped_256 zips must not be taken for 'cropped'
    with pytest.raises(BioscanError, match="unknown image package 'cropped_512'"):
        ImageStore.open(zip_root, "cropped_512")
    with pytest.raises(BioscanError, match="not a directory"):
        ImageStore.open(tmp_path / "nowhere")


def test_wrong_package_zip_and_broken_zip(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    with zipfile.ZipFile(root / "BIOSCAN_5M_cropped_256_eval.zip", "w") as archive:
        archive.writestr("bioscan5m/images/original_256/val/X.jpg", b"x")
    with pytest.raises(BioscanError, match="holds no images under bioscan5m/images/cropped_256/"):
        ImageStore.open(root, PACKAGE)
    (root / "BIOSCAN_5M_cropped_256_eval.zip").write_bytes(b"PK\x03\x04 half a download")
    with pytest.raises(BioscanError, match="BIOSCAN_5M_cropped_256_eval.zip: not a zip file"):
        ImageStore.open(root, PACKAGE)


def test_corrupt_images_name_the_member_or_file(tmp_path, vendored_data):
    good = vendored_crops(vendored_data)[0].read_bytes()
    root = tmp_path / "root"
    root.mkdir()
    zip_path = root / "BIOSCAN_5M_cropped_256_eval.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr(PREFIX + "val/TRUNC1-20.jpg", good[: len(good) // 3])
        archive.writestr(PREFIX + "val/GARBAGE1-20.jpg", b"not a jpeg at all")
        archive.writestr(PREFIX + "val/FLIPPED1-20.jpg", good)
    # Damage the stored bytes of the last member: the CRC check must catch it.
    raw = bytearray(zip_path.read_bytes())
    at = raw.find(good[-300:-240])  # past the truncated copy's end, so only in FLIPPED1-20
    raw[at : at + 8] = b"\x00" * 8
    zip_path.write_bytes(bytes(raw))
    store = ImageStore.open(root, PACKAGE, use_cache=False)
    for pid, reason in [("TRUNC1-20", "corrupt or unreadable image"), ("GARBAGE1-20", "corrupt or unreadable"),
                        ("FLIPPED1-20", "CRC")]:
        with pytest.raises(BioscanError, match=reason) as error:
            store.load(pid, "val", None)
        assert "BytesIO" not in str(error.value)  # nothing of the in-memory buffer reaches the user
        assert f"BIOSCAN_5M_cropped_256_eval.zip:bioscan5m/images/cropped_256/val/{pid}.jpg" in str(error.value)
        assert error.value.value == pid
    folder = root / PREFIX / "test"
    folder.mkdir(parents=True)
    (folder / "BAD1-20.jpg").write_bytes(good[:500])
    with pytest.raises(BioscanError, match=r"cropped_256/test/BAD1-20\.jpg: corrupt or unreadable image"):
        ImageStore.open(root, PACKAGE, use_cache=False).load("BAD1-20", "test", None)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_greyscale_cmyk_palette_and_alpha_become_rgb(tmp_path, vendored_data):
    with Image.open(vendored_crops(vendored_data)[0]) as opened:
        real = opened.convert("RGB")
    grey, cmyk, palette = real.convert("L"), real.convert("CMYK"), real.convert("P")
    rgba = real.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: shown as white
    variants = {"GREY1": _encoded(grey, "JPEG"), "CMYK1": _encoded(cmyk, "JPEG"),
                "PAL1": _encoded(palette, "PNG"), "ALPHA1": _encoded(rgba, "PNG")}
    root = tmp_path / "root"
    root.mkdir()
    with zipfile.ZipFile(root / "BIOSCAN_5M_cropped_256_eval.zip", "w") as archive:
        for pid, data in variants.items():
            archive.writestr(PREFIX + f"test/{pid}.jpg", data)
    store = ImageStore.open(root, PACKAGE, use_cache=False)
    loaded = {pid: np.asarray(store.load(pid, "test", None)) for pid in variants}
    assert all(a.shape == (real.height, real.width, 3) and a.dtype == np.uint8 for a in loaded.values())
    grey_pixels = np.asarray(Image.open(io.BytesIO(variants["GREY1"])))
    for channel in range(3):
        np.testing.assert_array_equal(loaded["GREY1"][..., channel], grey_pixels)
    cmyk_direct = np.asarray(Image.open(io.BytesIO(variants["CMYK1"])).convert("RGB"))
    np.testing.assert_array_equal(loaded["CMYK1"], cmyk_direct)
    np.testing.assert_array_equal(loaded["PAL1"], np.asarray(palette.convert("RGB")))
    assert (loaded["ALPHA1"] == 255).all()
    sixteen = Image.fromarray(np.array([[0, 1000], [30000, 60000]], dtype=np.uint16))
    assert np.asarray(to_rgb(sixteen))[..., 0].tolist() == [[0, 4], [127, 255]]


def test_store_survives_pickling_and_forking(layout):
    zip_root, _, places = layout
    pid, (split, chunk, file) = next(iter(places.items()))
    store = ImageStore.open(zip_root, PACKAGE)
    store.load(pid, split, chunk)  # opens a handle that must not travel
    clone = pickle.loads(pickle.dumps(store))
    assert clone.read_bytes(pid, split, chunk) == file.read_bytes()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        ok = store.read_bytes(pid, split, chunk) == file.read_bytes()
        os.write(writer, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(reader, 1) == b"1"
    assert store.read_bytes(pid, split, chunk) == file.read_bytes()


# --- transforms --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_real_image_through_the_eval_transform(shared_data):
    files = real_images(shared_data)
    assert len(files) > 800
    transform = image_transform(224)
    low = (0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    high = (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    narrowest = min(files, key=lambda f: min(Image.open(f).size))
    assert min(Image.open(narrowest).size) <= 16  # the set includes tiny crops
    for file in files:
        with Image.open(file) as image:
            tensor = transform(image)
        assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32, file
        values = tensor.numpy()
        assert np.isfinite(values).all(), file
        assert (values.min(axis=(1, 2)) >= low - 1e-5).all() and (values.max(axis=(1, 2)) <= high + 1e-5).all(), file


def test_eval_transform_is_a_centre_crop_of_a_256_px_image(vendored_data):
    file = vendored_data / "bioscan1m_crops" / "BIOUG68001-C12.jpg"
    image = Image.open(file).convert("RGB")
    assert image.size == (341, 256)  # shorter side already 256: the resize is a no-op
    tensor = image_transform(224)(image)
    pixels = np.asarray(image, dtype=np.float32)[16:240, 58:282] / 255.0
    expected = (pixels - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(tensor.permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_resize_and_crop_handle_odd_tiny_and_greyscale_images():
    assert ResizeShorterSide(256)(Image.new("RGB", (17, 333))).size == (256, 5015)
    assert ResizeShorterSide(256)(Image.new("RGB", (333, 17))).size == (5015, 256)
    assert ResizeShorterSide(7)(Image.new("RGB", (1, 1))).size == (7, 7)
    small = CenterCrop(4)(Image.new("RGB", (2, 2), (255, 255, 255)))
    assert small.size == (4, 4)
    assert np.asarray(small)[:, :, 0].tolist() == [[0, 0, 0, 0], [0, 255, 255, 0], [0, 255, 255, 0], [0, 0, 0, 0]]
    assert CenterCrop((3, 5))(Image.new("RGB", (9, 9))).size == (5, 3)
    grey = Image.fromarray(np.arange(16 * 40, dtype=np.uint8).reshape(40, 16), mode="L")  # 16 px wide
    for train in (False, True):
        tensor = image_transform(32, train=train, generator=0)(grey)
        assert tensor.shape == (3, 32, 32) and torch.isfinite(tensor).all()
    unnormalised = ToTensor()(grey)
    assert unnormalised.shape == (3, 40, 16)
    assert torch.equal(unnormalised[0], unnormalised[2]) and float(unnormalised[0, 1, 0]) == pytest.approx(16 / 255)


def test_train_transform_is_deterministic_given_a_seed(vendored_data):
    image = Image.open(vendored_crops(vendored_data)[3]).convert("RGB")
    first = [image_transform(64, train=True, generator=7)(image) for _ in range(2)]
    assert torch.equal(first[0], first[1])
    seeded = image_transform(64, train=True, generator=7)
    draws = [seeded(image) for _ in range(6)]
    assert not all(torch.equal(draws[0], d) for d in draws[1:])  # a stream, not one fixed crop
    other = image_transform(64, train=True, generator=8)(image)
    assert not torch.equal(first[0], other)
    generator_a = torch.Generator().manual_seed(3)
    generator_b = torch.Generator().manual_seed(3)
    assert torch.equal(image_transform(64, True, generator=generator_a)(image),
                       image_transform(64, True, generator=generator_b)(image))
    torch.manual_seed(11)
    global_a = image_transform(64, True)(image)
    torch.manual_seed(11)
    assert torch.equal(global_a, image_transform(64, True)(image))


def test_random_resized_crop_respects_scale_and_flip_mirrors():
    crop = RandomResizedCrop(32, scale=(0.8, 1.0), generator=1)
    fractions, ratios = [], []
    for _ in range(300):
        left, top, right, bottom = crop.crop_box(400, 300)
        assert 0 <= left < right <= 400 and 0 <= top < bottom <= 300
        fractions.append((right - left) * (bottom - top) / (400 * 300))
        ratios.append((right - left) / (bottom - top))
    assert 0.79 <= min(fractions) and max(fractions) <= 1.0
    assert 0.74 <= min(ratios) and max(ratios) <= 1.34
    # A 10 x 1000 strip never fits the ratio range: the fallback is a central crop at ratio 3/4.
    assert RandomResizedCrop(8, generator=0).crop_box(10, 1000) == (0, 493, 10, 506)
    # With the flip forced on, the output is the mirror of the unflipped crop.
    image = Image.fromarray(np.arange(3 * 8 * 8, dtype=np.uint8).reshape(8, 8, 3))
    plain = image_transform(8, True, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)(image)
    flipped_pipeline = image_transform(8, True, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    flipped_pipeline.transforms[1].p = 1.0
    assert torch.equal(flipped_pipeline(image), plain.flip(-1))


def test_transform_argument_errors():
    with pytest.raises(BioscanError, match="unknown interpolation 'cubic'"):
        image_transform(224, interpolation="cubic")
    with pytest.raises(BioscanError, match="must be at least the crop size"):
        image_transform(224, resize=200)
    with pytest.raises(BioscanError, match="increasing positive ranges"):
        RandomResizedCrop(224, scale=(1.0, 0.5))
    with pytest.raises(BioscanError, match="image size must be positive"):
        CenterCrop(0)
