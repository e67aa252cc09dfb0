"""Writing a synthetic dataset in the on-disk layout of the real BIOSCAN-5M.

``<out>/bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv`` holds the 23 metadata columns; the
images go to ``<out>/BIOSCAN_5M_<package>.zip`` with members
``bioscan5m/images/<package>/<split>/<chunk>/<processid>.jpg``, as in the official zips. The CSV is written in
chunks through a temporary file that replaces the destination only when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.csv
from tqdm.auto import tqdm

from bioscan5m.data.images import IMAGES_SUBDIR, check_package, image_path
from bioscan5m.data.schema import COLUMN_NAMES, SPLITS, TAXONOMIC_RANKS
from bioscan5m.data.synthetic import geography, hashing
from bioscan5m.data.synthetic.appearance import Appearance
from bioscan5m.data.synthetic.barcodes import read_profiles, render_reads
from bioscan5m.data.synthetic.render import encode_jpeg, render_specimen
from bioscan5m.data.synthetic.specimens import Specimens, sample_specimens
from bioscan5m.data.synthetic.taxonomy import PHYLUM
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_path

#: Where the metadata CSV lives below the dataset root (as in the official metadata archive).
METADATA_CSV = Path("bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv")
#: Records formatted per CSV chunk (bounds memory: about 100 MB at this size).
CHUNK_RECORDS = 50_000
#: Splits whose images are spread over ``<chunk>`` subfolders: two hex digits for pretrain, one for these.
_CHUNK_DIGITS = {"pretrain": 2, "train": 1, "other_heldout": 1}
#: Share of reads that differ from their haplotype's usual read (other trimming or Ns).
_OWN_READ_SHARE = 0.2
_STREAM_OWN_READ, _STREAM_NO_COORDS = 41, 42
_OWN_READ_KEYS = np.uint64(1 << 48)  # offsets record ids so they never collide with haplotype ids
#: Fixed zip member timestamp, so the same seed gives byte-identical zips.
_ZIP_TIME = (2024, 6, 1, 0, 0, 0)


def _labels(names: list[str]) -> np.ndarray:
    """Names as an object array with a trailing empty string, so that index -1 prints nothing."""
    return np.array([*names, ""], dtype=object)


def _decimal(values: np.ndarray, digits: int) -> list[str]:
    """Shortest decimal text of ``values`` rounded to ``digits`` (``0.25``, ``43.547``)."""
    return [repr(v) for v in np.round(values, digits).tolist()]


class _Formatter:
    """Formats records of one :class:`Specimens` as CSV lines, chunk by chunk."""

    def __init__(self, specimens: Specimens, appearance: Appearance, seed: int) -> None:
        self.s, self.barcodes, self.appearance, self.seed = specimens, specimens.barcodes, appearance, seed
        t = specimens.taxonomy
        self.class_names = _labels(t.class_names)
        self.order_names = _labels(t.order_names)
        self.family_names = _labels(t.family_names)
        self.subfamily_names = _labels(t.subfamily_names)
        self.genus_names = _labels(specimens.genus_labels)
        species_names = [""] * t.n_species
        for species, name in specimens.species_names.items():
            species_names[species] = name
        self.species_names = _labels(species_names)
        self.bin_codes = _labels(t.bin_code)
        sites = specimens.sites
        self.site_country = np.array(geography.country_names(), dtype=object)[sites.country]
        self.site_province = sites.province_name
        self.site_lat = np.array(_decimal(sites.lat, 3), dtype=object)
        self.site_lon = np.array(_decimal(sites.lon, 3), dtype=object)
        self.project_suffix = np.array([f"-{y:02d}" for y in specimens.project_year.tolist()], dtype=object)
        self.project_codes = np.array(specimens.project_codes, dtype=object)

    def taxonomy_columns(self, rows: slice) -> dict[str, np.ndarray]:
        """Phylum ... species and taxon (the deepest filled rank) of records ``rows``."""
        s, t = self.s, self.s.taxonomy
        species = s.species[rows]
        depth = s.depth[rows].astype(np.int64)
        genus = t.species_genus[species]
        family = t.genus_family[genus]
        subfamily = t.genus_subfamily[genus]
        rank = {name: TAXONOMIC_RANKS.index(name) for name in TAXONOMIC_RANKS}

        def shown(values: np.ndarray, name: str) -> np.ndarray:
            return np.where(depth >= rank[name], values, -1)

        columns = {
            "phylum": np.full(len(species), PHYLUM, dtype=object),
            "class": self.class_names[shown(t.order_class[t.family_order[family]], "class")],
            "order": self.order_names[shown(t.family_order[family], "order")],
            "family": self.family_names[shown(family, "family")],
            "subfamily": self.subfamily_names[shown(subfamily, "subfamily")],
            "genus": self.genus_names[shown(genus, "genus")],
            "species": self.species_names[shown(species, "species")],
        }
        taxon = columns["phylum"].copy()
        for name in TAXONOMIC_RANKS[1:]:
            filled = columns[name] != ""
            taxon[filled] = columns[name][filled]
        columns["taxon"] = taxon
        return columns

    def barcode_column(self, rows: slice) -> list[str]:
        """DNA barcodes of records ``rows``: their haplotype read through a read profile."""
        s = self.s
        haps = s.haplotype[rows]
        record = np.arange(rows.start, rows.stop, dtype=np.uint64)
        own = hashing.uniform(self.seed, _STREAM_OWN_READ, record) < _OWN_READ_SHARE
        keys = np.where(own, record + _OWN_READ_KEYS, haps.astype(np.uint64))
        unique_haps, inverse = np.unique(haps, return_inverse=True)
        sequences = self.barcodes.haplotypes(unique_haps)[inverse]
        return render_reads(sequences, read_profiles(self.seed, keys), self.seed, keys)

    def processids(self, rows: slice) -> list[str]:
        """BOLD process ids of records ``rows``: project code, number, two-digit year (``AACTA1026-20``)."""
        project = self.s.project[rows]
        numbers = self.s.number[rows].astype(str).astype(object)
        return (self.project_codes[project] + numbers + self.project_suffix[project]).tolist()

    def split_names(self, rows: slice) -> list[str]:
        return np.array(SPLITS, dtype=object)[self.s.split[rows]].tolist()

    def lines(self, rows: slice) -> str:
        """CSV text (with trailing newline) of records ``rows``."""
        s = self.s
        record = np.arange(rows.start, rows.stop)
        processid = self.processids(rows)
        plate, well = np.divmod(s.sample_ordinal[rows], 95)
        sampleid = [
            f"BIOUG{10000 + p:05d}-{'ABCDEFGH'[w // 12]}{w % 12 + 1:02d}"
            for p, w in zip(plate.tolist(), well.tolist())
        ]
        split_names = self.split_names(rows)
        chunk = [image_chunk(pid, split) for pid, split in zip(processid, split_names)]
        site = s.site[rows]
        no_coords = hashing.uniform(self.seed, _STREAM_NO_COORDS, record) < 0.03
        frames = self.appearance.frames(s.species[rows], record)
        index_1m = s.bioscan1m_index[rows]
        columns = self.taxonomy_columns(rows)
        columns.update(
            processid=processid,
            sampleid=sampleid,
            dna_bin=self.bin_codes[np.where(s.bin_known[rows], s.bin[rows], -1)],
            dna_barcode=self.barcode_column(rows),
            country=self.site_country[site],
            province_state=self.site_province[site],
            **{
                "coord-lat": np.where(no_coords, "", self.site_lat[site]),
                "coord-lon": np.where(no_coords, "", self.site_lon[site]),
            },
            image_measurement_value=frames.organism_pixels.astype(np.int64).astype(str),
            area_fraction=_decimal(frames.area_fraction, 5),
            scale_factor=_decimal(frames.scale_factor, 4),
            inferred_ranks=s.inferred_ranks[rows].astype(str),
            split=split_names,
            index_bioscan_1M_insect=np.where(index_1m >= 0, index_1m.astype(str), ""),
            chunk=chunk,
        )
        ordered = [np.asarray(columns[name], dtype=object).tolist() for name in COLUMN_NAMES]
        return "\n".join(map(",".join, zip(*ordered))) + "\n"

    def image_members(self, package: str) -> Iterator[tuple[int, str]]:
        """(record, zip member name) of every record, in file order."""
        for lo in range(0, len(self.s), CHUNK_RECORDS):
            rows = slice(lo, min(len(self.s), lo + CHUNK_RECORDS))
            for offset, (pid, split) in enumerate(zip(self.processids(rows), self.split_names(rows))):
                member = image_path(split, image_chunk(pid, split), pid)
                yield lo + offset, f"{IMAGES_SUBDIR}/{package}/{member}"


def image_chunk(processid: str, split: str) -> str:
    """Image subfolder of a record, as in BIOSCAN-5M: the first hex digits of the MD5 of its process id
    (two for pretrain, one for train and other_heldout, none for the evaluation splits)."""
    return hashlib.md5(processid.encode("ascii")).hexdigest()[: _CHUNK_DIGITS.get(split, 0)]


def write_synthetic_dataset(
    out: str | os.PathLike[str],
    records: int = 5000,
    *,
    images: bool = True,
    seed: int = 0,
    image_package: str = "cropped_256",
) -> Path:
    """Write a synthetic BIOSCAN-5M-like dataset of ``records`` specimens under ``out``; return ``out``.

    Writes ``<out>/bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv`` (the 23 columns of the
    real file) and, with ``images``, ``<out>/BIOSCAN_5M_<image_package>.zip`` (JPEG photos in the official
    member layout). The same ``records`` and ``seed`` always give byte-identical files.
    """
    if records < 1:
        raise BioscanError(f"the number of records must be at least 1, got {records}", value=records)
    if images:
        check_package(image_package)
    out = Path(out)
    specimens = sample_specimens(records, seed)
    appearance = Appearance(specimens.taxonomy, seed)
    formatter = _Formatter(specimens, appearance, seed)

    # Both files are renamed into place only once both are complete: an interrupted run leaves neither
    # (never a metadata CSV without its images).
    with contextlib.ExitStack() as finished:
        with (
            open(finished.enter_context(atomic_path(out / METADATA_CSV)), "w", encoding="utf-8", newline="") as handle,
            tqdm(total=records, unit="record", desc="metadata", disable=None) as progress,
        ):
            handle.write(",".join(COLUMN_NAMES) + "\n")
            for lo in range(0, records, CHUNK_RECORDS):
                rows = slice(lo, min(records, lo + CHUNK_RECORDS))
                handle.write(formatter.lines(rows))
                progress.update(rows.stop - rows.start)
        if images:
            tmp = finished.enter_context(atomic_path(out / f"BIOSCAN_5M_{image_package}.zip"))
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                for record, member in tqdm(
                    formatter.image_members(image_package),
                    total=records,
                    unit="image",
                    desc="images",
                    disable=None,
                ):
                    image = render_specimen(appearance, int(specimens.species[record]), record, image_package)
                    info = zipfile.ZipInfo(member, date_time=_ZIP_TIME)
                    archive.writestr(info, encode_jpeg(image))
    return out


def count_splits(root: str | os.PathLike[str]) -> dict[str, int]:
    """Records per split in the metadata CSV under dataset ``root``, read as a stream (bounded memory)."""
    counts: Counter[str] = Counter()
    reader = pyarrow.csv.open_csv(
        Path(root) / METADATA_CSV,
        read_options=pyarrow.csv.ReadOptions(block_size=4 << 20, use_threads=False),
        convert_options=pyarrow.csv.ConvertOptions(include_columns=["split"]),
    )
    for batch in reader:
        counts.update(batch.column(0).to_pylist())
    return {split: counts.get(split, 0) for split in SPLITS}
