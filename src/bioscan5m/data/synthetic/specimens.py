"""Specimens: which species each record is, how far it was identified, its haplotype, split and provenance.

The sampling mirrors how BIOSCAN-5M came about:

* species abundances are log-normal (a few species with thousands of records, most with a handful);
* most records are identified only to family or so (``pretrain``); some species carry scientific names
  (``train``/``val``/``test`` when *seen*, ``key_unseen``/``val_unseen``/``test_unseen`` when *unseen*,
  i.e. held out although their genus is known), others only placeholder names (``other_heldout``);
* test and validation records are chosen per species by whole barcode, as the authors' script does, so no
  full-length barcode sits on both sides of a split.

Small datasets are label-richer than the real one so every split has enough records to be useful; from about
a million records on, split shares match the paper (pretrain 90.8 %, train 5.6 %, other_heldout 1.5 %, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bioscan5m.data.schema import SPLITS, TAXONOMIC_RANKS
from bioscan5m.data.synthetic import geography, hashing, names
from bioscan5m.data.synthetic.barcodes import BARCODE_LENGTH, BarcodeModel, build_barcodes
from bioscan5m.data.synthetic.geography import Sites
from bioscan5m.data.synthetic.taxonomy import Taxonomy, build_taxonomy

#: Records per species (BIOSCAN-5M: 5.15 M records in about 324 k BINs, ~1.1 BIN per species).
RECORDS_PER_SPECIES = 10
#: Spread (sigma of the log) of species abundances.
ABUNDANCE_SIGMA = 2.0
#: Records of BIOSCAN-5M per split (docs/paper.md), used as target shares.
PAPER_SPLIT_RECORDS = {
    "pretrain": 4_677_756,
    "train": 289_203,
    "val": 14_757,
    "test": 39_373,
    "key_unseen": 36_465,
    "val_unseen": 8_819,
    "test_unseen": 7_887,
    "other_heldout": 76_590,
}
#: Share of records of named species that were nevertheless left unidentified (they go to pretrain).
UNIDENTIFIED_SHARE = 0.25
#: The same for unseen species, which need at least 8 named records for their test split.
UNSEEN_UNIDENTIFIED_SHARE = 0.1
#: Deepest rank of unidentified records (pretrain): phylum, class, order, family, subfamily, genus.
#: Chosen so that, overall, ranks are labelled about as often as in BIOSCAN-5M (family 96 %, genus 24 %).
PRETRAIN_DEPTH = np.array([0.001, 0.002, 0.043, 0.684, 0.11, 0.16])
#: Share of described genera (besides those of named species) whose unnamed records may be named to genus.
KNOWN_GENUS_SHARE = 0.03
#: Share of records from BIOSCAN-1M (which carry ``index_bioscan_1M_insect``): 1,128,313 of 5,150,850.
BIOSCAN_1M_SHARE = 1_128_313 / 5_150_850

#: Species status: never named, seen (named, in train/val/test), unseen (named, held out), placeholder name.
DARK, SEEN, UNSEEN, PLACEHOLDER = 0, 1, 2, 3
SPECIES_DEPTH = TAXONOMIC_RANKS.index("species")
GENUS_DEPTH = TAXONOMIC_RANKS.index("genus")
SUBFAMILY_DEPTH = TAXONOMIC_RANKS.index("subfamily")
_SPLIT = {name: index for index, name in enumerate(SPLITS)}


def labelled_share(n_records: int) -> float:
    """Share of records named to species: 9.2 % (as BIOSCAN-5M) from 1 M records on, up to 50 % when tiny."""
    real = 1 - PAPER_SPLIT_RECORDS["pretrain"] / sum(PAPER_SPLIT_RECORDS.values())
    return float(np.clip(real * (1e6 / max(n_records, 1)) ** 0.35, real, 0.5))


@dataclass
class Specimens:
    """All records of a synthetic dataset as parallel arrays (one row per record, in file order), plus the
    taxonomy, sites and naming they refer to."""

    taxonomy: Taxonomy
    sites: Sites
    species_status: np.ndarray  # uint8 per species: DARK, SEEN, UNSEEN, PLACEHOLDER
    species_names: dict[int, str]  # printed species name of every named (non-dark) species
    genus_labels: list[str]  # printed genus name (placeholder for undescribed genera)
    project_codes: list[str]
    project_year: np.ndarray  # two-digit year per project
    barcodes: BarcodeModel
    # per record
    species: np.ndarray
    bin: np.ndarray
    haplotype: np.ndarray  # global haplotype id (see BarcodeModel)
    depth: np.ndarray  # deepest labelled rank, index into TAXONOMIC_RANKS
    split: np.ndarray  # index into SPLITS
    site: np.ndarray
    project: np.ndarray
    number: np.ndarray  # processid number within the project
    sample_ordinal: np.ndarray  # position in the plate sequence (sampleid)
    bin_known: np.ndarray  # bool: dna_bin filled in
    inferred_ranks: np.ndarray
    bioscan1m_index: np.ndarray  # -1 where the record is not in BIOSCAN-1M

    def __len__(self) -> int:
        return len(self.species)


def _assign_status(
    rng: np.random.Generator, taxonomy: Taxonomy, counts: np.ndarray, n_records: int
) -> np.ndarray:
    """Give species a status so that named records hit the split shares of the paper.

    Seen and unseen species come from described genera; unseen ones need enough records for a test set
    (>= 8 named records) and a genus that also has seen species; placeholder names go to small species.
    """
    status = np.zeros(taxonomy.n_species, dtype=np.uint8)
    named_records = labelled_share(n_records) * n_records / (1 - UNIDENTIFIED_SHARE)
    total = sum(v for k, v in PAPER_SPLIT_RECORDS.items() if k != "pretrain")
    share = {
        SEEN: sum(PAPER_SPLIT_RECORDS[s] for s in ("train", "val", "test")) / total,
        UNSEEN: sum(PAPER_SPLIT_RECORDS[s] for s in ("key_unseen", "val_unseen", "test_unseen")) / total,
        PLACEHOLDER: PAPER_SPLIT_RECORDS["other_heldout"] / total,
    }
    described = taxonomy.genus_described[taxonomy.species_genus]
    # Common species are more often the named ones: a random order weighted by (1 + records / 10) ** 0.7
    # (BIOSCAN-5M: 29 records per seen species, but most records in a few well-known species).
    weight = (1 + np.maximum(counts, 1) / 10) ** 0.7
    order = np.argsort(np.log(rng.random(taxonomy.n_species)) / -weight, kind="stable")

    def fill(candidates: np.ndarray, budget: float, value: int) -> None:
        chosen = candidates[np.cumsum(counts[candidates]) <= budget]
        # Always take at least one candidate so that each status exists even in tiny datasets.
        if len(chosen) == 0 and len(candidates):
            chosen = candidates[:1]
        status[chosen] = value

    fill(order[described[order] & (counts[order] > 0)], share[SEEN] * named_records, SEEN)
    seen_genera = np.zeros(len(taxonomy.genus_family), dtype=bool)
    seen_genera[taxonomy.species_genus[status == SEEN]] = True
    min_unseen = int(np.ceil(8 / (1 - UNSEEN_UNIDENTIFIED_SHARE)))
    fill(
        order[
            (status[order] == DARK)
            & described[order]
            & seen_genera[taxonomy.species_genus[order]]
            & (counts[order] >= min_unseen)
        ],
        share[UNSEEN] * named_records,
        UNSEEN,
    )
    # Placeholder-named species lean to rare ones (BIOSCAN-5M: 7.8 records each, vs 29 when seen).
    order = np.argsort(-np.log(rng.random(taxonomy.n_species)) * np.maximum(counts, 1) ** 0.1, kind="stable")
    fill(
        order[(status[order] == DARK) & (counts[order] > 0)], share[PLACEHOLDER] * named_records, PLACEHOLDER
    )
    return status


def _name_species(
    rng: np.random.Generator, taxonomy: Taxonomy, status: np.ndarray
) -> tuple[dict[int, str], list[str]]:
    """Printed names: binomials for seen/unseen species, interim names for placeholder species, and the
    genus column (a placeholder such as ``Thymelidae gen. 3`` for undescribed genera)."""
    genus_labels = list(taxonomy.genus_names)
    undescribed = np.flatnonzero(~taxonomy.genus_described)
    within_family: dict[int, int] = {}
    for genus in undescribed.tolist():
        family = int(taxonomy.genus_family[genus])
        within_family[family] = within_family.get(family, 0) + 1
        genus_labels[genus] = f"{taxonomy.family_names[family]} gen. {within_family[family]}"

    species_names: dict[int, str] = {}
    named = np.flatnonzero(status != DARK)
    by_genus: dict[int, list[int]] = {}
    for species in named.tolist():
        by_genus.setdefault(int(taxonomy.species_genus[species]), []).append(species)
    for genus, members in by_genus.items():
        epithet_pool = iter(names.epithets(rng, len(members)))
        for species in members:
            epithet = next(epithet_pool)
            first_bin = int(np.searchsorted(taxonomy.bin_species, species))
            if status[species] != PLACEHOLDER:
                species_names[species] = f"{taxonomy.genus_names[genus]} {epithet}"
            elif not taxonomy.genus_described[genus]:
                family = taxonomy.family_names[taxonomy.genus_family[genus]]
                species_names[species] = f"{family} sp. {taxonomy.bin_code[first_bin].removeprefix('BOLD:')}"
            else:
                species_names[species] = _interim_name(
                    rng, taxonomy.genus_names[genus], epithet, taxonomy.bin_code[first_bin]
                )
    return species_names, genus_labels


def _interim_name(rng: np.random.Generator, genus: str, epithet: str, bin_code: str) -> str:
    """A BOLD-style interim species name: ``Genus sp. ACF1234``, ``Genus sp. 12HB`` or ``Genus cf. epithet``."""
    style = rng.random()
    if style < 0.5:
        return f"{genus} sp. {bin_code.removeprefix('BOLD:')}"
    if style < 0.8:
        letters = "".join(rng.choice(list("ABCDEFGHJKLMNPRSTUVWXYZ"), 2))
        return f"{genus} sp. {rng.integers(1, 40)}{letters}"
    return f"{genus} cf. {epithet}"


def _haplotypes(
    rng: np.random.Generator, record_bin: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Haplotype of each record: BIN b with n records has about 1.3 * n**0.9 haplotypes, the consensus
    (and a few others) common and most rare, so that identical barcodes recur as in real data."""
    per_bin = np.bincount(record_bin, minlength=n_bins)
    haplotypes_per_bin = np.maximum(1, np.round(1.3 * per_bin**0.9)).astype(np.int64)
    hap_offset = np.concatenate([[0], np.cumsum(haplotypes_per_bin)])
    k = np.floor(haplotypes_per_bin[record_bin] * rng.random(len(record_bin)) ** 4.0).astype(np.int64)
    return (hap_offset[record_bin] + k).astype(np.int32), haplotypes_per_bin


def _pick_groups(
    rng: np.random.Generator, haps: np.ndarray, sizes: np.ndarray, target: float, upper: float, lower: float
) -> np.ndarray:
    """Choose whole barcode groups (random order) summing to about ``target`` records, never above
    ``upper``, never every group; empty if fewer than ``lower`` records could be chosen."""
    if len(haps) < 2 or target <= 0:
        return haps[:0]
    order = rng.permutation(len(haps))
    chosen, total = [], 0
    for i in order.tolist():
        if total >= target or len(chosen) == len(haps) - 1:
            break
        if total + sizes[i] <= upper:
            chosen.append(i)
            total += int(sizes[i])
    if total < lower:
        return haps[:0]
    return haps[np.array(chosen, dtype=np.int64)]


def _test_target(n: int) -> tuple[float, float]:
    """(target, upper bound) of test records for a species with ``n`` named records (authors' rule)."""
    if n < 8:
        return 0.0, 0.0
    return float(min(25, 4 + (n - 8) // 4)), float(4 + (n - 8) // 3)


def _assign_splits(
    rng: np.random.Generator,
    species: np.ndarray,
    barcode: np.ndarray,
    status: np.ndarray,
    labelled: np.ndarray,
) -> np.ndarray:
    """Split of every record (index into SPLITS), following the BIOSCAN-5M partitioning rules.

    ``barcode`` identifies each record's barcode sequence (records with identical barcodes share an id):
    test and validation records are chosen by whole barcodes, so a barcode never straddles two splits.
    """
    split = np.full(len(species), _SPLIT["pretrain"], dtype=np.uint8)
    record_status = status[species]
    split[labelled & (record_status == PLACEHOLDER)] = _SPLIT["other_heldout"]
    split[labelled & (record_status == SEEN)] = _SPLIT["train"]
    split[labelled & (record_status == UNSEEN)] = _SPLIT["key_unseen"]

    rows = np.flatnonzero(labelled & ((record_status == SEEN) | (record_status == UNSEEN)))
    rows = rows[np.lexsort((barcode[rows], species[rows]))]
    bounds = np.flatnonzero(np.r_[True, species[rows][1:] != species[rows][:-1], True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        members = rows[lo:hi]
        if not len(members):  # no seen or unseen species at all (a dataset of one or two records)
            continue
        haps, sizes = np.unique(barcode[members], return_counts=True)
        n = hi - lo
        seen = status[species[members[0]]] == SEEN
        target, upper = _test_target(n)
        test = _pick_groups(rng, haps, sizes, target, upper, 3)
        split[members[np.isin(barcode[members], test)]] = _SPLIT["test" if seen else "test_unseen"]
        keep = ~np.isin(haps, test)
        haps, sizes = haps[keep], sizes[keep]
        left = int(sizes.sum())
        if seen:
            if left >= 20:
                val = _pick_groups(rng, haps, sizes, 0.05 * left, 0.10 * left, 1)
            elif left >= 7 and rng.random() < 0.6:
                # Long-tail species lend one singleton barcode to val, as the authors' script does.
                val = _pick_groups(rng, haps[sizes == 1], sizes[sizes == 1], 1, 1, 1)
            else:
                val = haps[:0]
            split[members[np.isin(barcode[members], val)]] = _SPLIT["val"]
        else:
            val = _pick_groups(rng, haps, sizes, 0.2 * left, 0.4 * left, 1)
            split[members[np.isin(barcode[members], val)]] = _SPLIT["val_unseen"]
    return split


def _barcode_ids(barcodes: BarcodeModel, haplotype: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """An id per record of ``rows`` (a mask) shared by records whose haplotypes have the same 658 bp
    barcode (distinct haplotypes can coincide there); -1 elsewhere."""
    haps = np.unique(haplotype[rows])
    # A 64-bit polynomial hash of each barcode, computed in blocks to keep memory small.
    weights = hashing.mix64(np.arange(BARCODE_LENGTH, dtype=np.uint64))
    digest = np.empty(len(haps), dtype=np.uint64)
    for lo in range(0, len(haps), 4096):
        core = barcodes.haplotypes(haps[lo : lo + 4096])[:, :BARCODE_LENGTH].astype(np.uint64)
        with np.errstate(over="ignore"):
            digest[lo : lo + 4096] = (core * weights).sum(axis=1)
    _, group_of_hap = np.unique(digest, return_inverse=True)
    ids = np.full(len(haplotype), -1, dtype=np.int64)
    ids[rows] = group_of_hap.ravel()[np.searchsorted(haps, haplotype[rows])]
    return ids


def _draw_within(
    rng: np.random.Generator, groups: np.ndarray, member_group: np.ndarray, member_weight: np.ndarray
) -> np.ndarray:
    """For each entry of ``groups``, the index of a member of that group, drawn in proportion to weight.

    Members are described by ``member_group`` (their group) and ``member_weight``; every group asked for
    must have at least one member.
    """
    order = np.argsort(member_group, kind="stable")
    grouped = member_group[order]
    totals = np.bincount(member_group, weights=member_weight, minlength=int(grouped[-1]) + 1)
    before = np.cumsum(totals) - totals
    # Members of group g tile the interval (g, g + 1] in proportion to their weights.
    position = grouped + (np.cumsum(member_weight[order]) - before[grouped]) / totals[grouped]
    position[np.r_[grouped[1:] != grouped[:-1], True]] = (
        grouped[np.r_[grouped[1:] != grouped[:-1], True]] + 1.0
    )
    return order[np.searchsorted(position, groups + rng.random(len(groups)), side="left")]


def _identification_depth(
    rng: np.random.Generator,
    taxonomy: Taxonomy,
    species: np.ndarray,
    labelled: np.ndarray,
    status: np.ndarray,
) -> np.ndarray:
    """Deepest named rank of each record (index into TAXONOMIC_RANKS): species where ``labelled``, else
    drawn from :data:`PRETRAIN_DEPTH`.

    Only a minority of genera are ever named in a catch like this (BIOSCAN-5M: 7,605 genera among
    324 k BINs): the genera of named species and a few others. Genus-level names go to those, so as many
    records as in BIOSCAN-5M carry a genus, but from far fewer genera. Subfamilies are named only where
    the family has them.
    """
    depth = np.full(len(species), SPECIES_DEPTH, dtype=np.uint8)
    unnamed = np.flatnonzero(~labelled)
    p = PRETRAIN_DEPTH[:GENUS_DEPTH] / PRETRAIN_DEPTH[:GENUS_DEPTH].sum()
    depth[unnamed] = rng.choice(GENUS_DEPTH, size=len(unnamed), p=p)
    genus = taxonomy.species_genus[species]
    known = taxonomy.genus_described & (rng.random(len(taxonomy.genus_family)) < KNOWN_GENUS_SHARE)
    known[taxonomy.species_genus[(status == SEEN) | (status == UNSEEN)]] = True
    in_known = unnamed[known[genus[unnamed]]]
    to_genus = PRETRAIN_DEPTH[GENUS_DEPTH] / PRETRAIN_DEPTH.sum() * len(unnamed) / max(1, len(in_known))
    depth[in_known[rng.random(len(in_known)) < min(0.95, to_genus)]] = GENUS_DEPTH
    depth[(depth == SUBFAMILY_DEPTH) & (taxonomy.genus_subfamily[genus] < 0)] = SUBFAMILY_DEPTH - 1
    return depth


@dataclass(frozen=True)
class _Provenance:
    sites: Sites
    site: np.ndarray
    project: np.ndarray
    project_codes: list[str]
    project_year: np.ndarray
    number: np.ndarray
    sample_ordinal: np.ndarray


def _provenance(rng: np.random.Generator, species: np.ndarray, n_species: int) -> _Provenance:
    """Where and by whom each record was collected: site, BOLD project (one country and year each) and
    the record's number within its project (process ids count up within a project)."""
    n_records = len(species)
    sites = geography.make_sites(rng, n_records)
    shares = geography.country_shares()
    # Each species has a home country; most of its records come from there.
    home = rng.choice(len(shares), size=n_species, p=shares)
    country = np.where(
        rng.random(n_records) < 0.75, home[species], rng.choice(len(shares), n_records, p=shares)
    )
    site = _draw_within(rng, country, sites.country.astype(np.int64), sites.weight)

    n_projects = np.maximum(1, np.round(shares * n_records / 20000)).astype(np.int64)
    project_country = np.repeat(np.arange(len(shares)), n_projects)
    project_weight = rng.pareto(1.2, len(project_country)) + 0.1
    project = _draw_within(rng, sites.country[site].astype(np.int64), project_country, project_weight)
    codes = names.project_codes(rng, len(project_country))
    year = rng.integers(19, 24, len(project_country))
    by_project = np.argsort(project, kind="stable")
    per_project = np.bincount(project, minlength=len(project_country))
    number = np.empty(n_records, dtype=np.int32)
    number[by_project] = np.arange(n_records) - np.repeat(np.cumsum(per_project) - per_project, per_project)
    number += 1 + rng.integers(0, 200, len(project_country)).astype(np.int32)[project]
    sample_ordinal = np.empty(n_records, dtype=np.int32)
    sample_ordinal[by_project] = np.arange(n_records)
    return _Provenance(
        sites, site.astype(np.int32), project.astype(np.int32), codes, year, number, sample_ordinal
    )


def sample_specimens(n_records: int, seed: int = 0) -> Specimens:
    """Sample a whole synthetic BIOSCAN-5M-like dataset of ``n_records`` records (not yet rendered)."""
    rng = np.random.default_rng([seed, 5150850])
    n_species = max(40, round(n_records / RECORDS_PER_SPECIES))
    taxonomy = build_taxonomy(rng, n_species)

    # Log-normal abundances, rescaled so that each order keeps its share of records (Diptera ~71 %)
    # even in small datasets, where a few abundant species would otherwise decide.
    abundance = rng.lognormal(0.0, ABUNDANCE_SIGMA, n_species)
    order = taxonomy.species_order
    order_share = np.bincount(order, minlength=len(taxonomy.order_names)) / n_species
    abundance *= (order_share / np.bincount(order, weights=abundance, minlength=len(order_share)))[order]
    counts = rng.multinomial(n_records, abundance / abundance.sum())
    species = rng.permutation(np.repeat(np.arange(n_species, dtype=np.int32), counts))

    status = _assign_status(rng, taxonomy, counts, n_records)
    species_names, genus_labels = _name_species(rng, taxonomy, status)

    # Which records of named species got their species name.
    record_status = status[species]
    unidentified = np.where(record_status == UNSEEN, UNSEEN_UNIDENTIFIED_SHARE, UNIDENTIFIED_SHARE)
    labelled = (record_status != DARK) & (rng.random(n_records) >= unidentified)
    # Every named species keeps at least one named record (its first), so it really is in its split.
    first = np.unique(species, return_index=True)[1]
    labelled[first[record_status[first] != DARK]] = True

    depth = _identification_depth(rng, taxonomy, species, labelled, status)

    # BIN of each record: the species' first BIN mostly, its other lineages now and then.
    bins_of = np.bincount(taxonomy.bin_species, minlength=n_species)
    first_bin = np.concatenate([[0], np.cumsum(bins_of)[:-1]])
    extra = rng.random(n_records) < 0.2
    offset = np.where(extra, np.floor(rng.random(n_records) * bins_of[species]).astype(np.int64), 0)
    record_bin = (first_bin[species] + offset).astype(np.int32)
    haplotype, haplotypes_per_bin = _haplotypes(rng, record_bin, len(taxonomy.bin_species))
    barcodes = build_barcodes(np.random.default_rng([seed, 658]), taxonomy, haplotypes_per_bin)

    named = labelled & ((status[species] == SEEN) | (status[species] == UNSEEN))
    split = _assign_splits(rng, species, _barcode_ids(barcodes, haplotype, named), status, labelled)

    provenance = _provenance(rng, species, n_species)

    bin_known = rng.random(n_records) >= 0.003
    inferred_ranks = np.where(
        (rng.random(n_records) < 0.04) & (depth >= 3), 1 + np.floor(rng.random(n_records) * (depth - 2)), 0
    ).astype(np.uint8)
    insect = taxonomy.class_names.index("Insecta") if "Insecta" in taxonomy.class_names else -1
    in_1m = (taxonomy.species_class[species] == insect) & (rng.random(n_records) < BIOSCAN_1M_SHARE / 0.98)
    bioscan1m_index = np.full(n_records, -1, dtype=np.int32)
    bioscan1m_index[in_1m] = rng.permutation(int(in_1m.sum()))

    return Specimens(
        taxonomy=taxonomy,
        sites=provenance.sites,
        species_status=status,
        species_names=species_names,
        genus_labels=genus_labels,
        project_codes=provenance.project_codes,
        project_year=provenance.project_year,
        barcodes=barcodes,
        species=species,
        bin=record_bin,
        haplotype=haplotype,
        depth=depth,
        split=split,
        site=provenance.site,
        project=provenance.project,
        number=provenance.number,
        sample_ordinal=provenance.sample_ordinal,
        bin_known=bin_known,
        inferred_ranks=inferred_ranks,
        bioscan1m_index=bioscan1m_index,
    )
