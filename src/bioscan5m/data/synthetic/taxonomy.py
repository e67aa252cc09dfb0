"""The synthetic tree of life: phylum → class → order → family → subfamily → genus → species → BIN.

Orders and classes carry real names and BIOSCAN-5M-like record shares (Diptera about 71 %, Hymenoptera
13 %, a long tail of rare orders, 2 % non-insects); below them, names are invented and the number of
children per node is skewed (Zipf-like weights), so a few families and genera are huge and most are small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bioscan5m.data.synthetic import names

PHYLUM = "Arthropoda"

#: (class, order, share of records), roughly as in BIOSCAN-5M's Malaise-trap catch.
ORDERS: tuple[tuple[str, str, float], ...] = (
    ("Insecta", "Diptera", 0.714),
    ("Insecta", "Hymenoptera", 0.125),
    ("Insecta", "Hemiptera", 0.052),
    ("Insecta", "Lepidoptera", 0.026),
    ("Insecta", "Coleoptera", 0.026),
    ("Insecta", "Psocodea", 0.014),
    ("Insecta", "Thysanoptera", 0.008),
    ("Insecta", "Trichoptera", 0.004),
    ("Insecta", "Orthoptera", 0.002),
    ("Insecta", "Blattodea", 0.0015),
    ("Insecta", "Neuroptera", 0.0012),
    ("Insecta", "Ephemeroptera", 0.0008),
    ("Insecta", "Plecoptera", 0.0006),
    ("Insecta", "Odonata", 0.0002),
    ("Insecta", "Mecoptera", 0.0002),
    ("Insecta", "Dermaptera", 0.0002),
    ("Insecta", "Mantodea", 0.0001),
    ("Insecta", "Strepsiptera", 0.0001),
    ("Insecta", "Siphonaptera", 0.00004),
    ("Insecta", "Archaeognatha", 0.00004),
    ("Insecta", "Embioptera", 0.00003),
    ("Insecta", "Megaloptera", 0.00003),
    ("Insecta", "Zygentoma", 0.00002),
    ("Insecta", "Raphidioptera", 0.00002),
    ("Insecta", "Phasmida", 0.00002),
    ("Insecta", "Zoraptera", 0.00001),
    ("Arachnida", "Araneae", 0.005),
    ("Arachnida", "Trombidiformes", 0.003),
    ("Arachnida", "Sarcoptiformes", 0.002),
    ("Arachnida", "Mesostigmata", 0.001),
    ("Arachnida", "Opiliones", 0.0003),
    ("Arachnida", "Pseudoscorpiones", 0.0002),
    ("Collembola", "Entomobryomorpha", 0.004),
    ("Collembola", "Symphypleona", 0.0015),
    ("Collembola", "Poduromorpha", 0.0005),
    ("Malacostraca", "Isopoda", 0.0002),
    ("Malacostraca", "Amphipoda", 0.0001),
    ("Diplopoda", "Polydesmida", 0.0001),
    ("Diplopoda", "Julida", 0.00005),
    ("Chilopoda", "Lithobiomorpha", 0.00005),
    ("Chilopoda", "Geophilomorpha", 0.00003),
    ("Branchiopoda", "Diplostraca", 0.00002),
    ("Ostracoda", "Podocopida", 0.00001),
    ("Hexanauplia", "Cyclopoida", 0.00001),
    ("Protura", "Acerentomata", 0.00001),
)

#: Share of families that are split into subfamilies (the rest leave ``subfamily`` empty).
SUBFAMILY_SHARE = 0.8
#: Share of genera still undescribed: their species can only carry placeholder names.
UNDESCRIBED_GENUS_SHARE = 0.3
#: Share of species whose main BIN also holds a sister species (BINs that lump two species).
SHARED_BIN_SHARE = 0.02


@dataclass(frozen=True)
class Taxonomy:
    """The tree as parent-index arrays, one per rank (index = node id at that rank).

    Every species has exactly one genus, every genus one family (and a subfamily, or -1), and so on up.
    ``genus_described`` is False for genera that have no scientific name yet. BINs are the leaves:
    ``bin_species`` maps each BIN to its species and ``bin_code`` gives its printed ``BOLD:AAA0000`` URI
    (two BINs share a code where a BIN lumps two sister species).
    """

    class_names: list[str]
    order_names: list[str]
    order_class: np.ndarray
    family_names: list[str]
    family_order: np.ndarray
    subfamily_names: list[str]
    subfamily_family: np.ndarray
    genus_names: list[str]
    genus_family: np.ndarray
    genus_subfamily: np.ndarray  # -1: family without subfamilies
    genus_described: np.ndarray  # bool
    species_genus: np.ndarray
    species_rank_in_genus: np.ndarray  # 0 for the genus's first species, 1 for the next, ...
    species_recent: np.ndarray  # bool: diverged very recently (shares a BIN with a sister species)
    bin_species: np.ndarray
    bin_code: list[str]

    @property
    def n_species(self) -> int:
        return len(self.species_genus)

    @property
    def species_family(self) -> np.ndarray:
        return self.genus_family[self.species_genus]

    @property
    def species_order(self) -> np.ndarray:
        return self.family_order[self.species_family]

    @property
    def species_class(self) -> np.ndarray:
        return self.order_class[self.species_order]

    @property
    def species_subfamily(self) -> np.ndarray:
        return self.genus_subfamily[self.species_genus]


def split_counts(
    rng: np.random.Generator, total: int, parts: int, exponent: float, noise: float
) -> np.ndarray:
    """Split ``total`` items into ``parts`` groups of at least one, with Zipf-like sizes.

    Group weights are ``rank**-exponent`` times log-normal noise (sigma ``noise``), in random order.
    """
    parts = max(1, min(parts, total))
    weights = np.arange(1, parts + 1, dtype=np.float64) ** -exponent * rng.lognormal(0.0, noise, parts)
    weights = rng.permutation(weights)
    counts = np.ones(parts, dtype=np.int64)
    if total > parts:
        counts += rng.multinomial(total - parts, weights / weights.sum())
    return counts


def allocate(total: int, shares: np.ndarray) -> np.ndarray:
    """Largest-remainder rounding of ``total * shares`` to integers summing to ``total``."""
    exact = total * shares / shares.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder = total - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:remainder]] += 1
    return counts


def _children(parent_counts: np.ndarray) -> np.ndarray:
    """Parent index of each child when parent i has ``parent_counts[i]`` consecutive children."""
    return np.repeat(np.arange(len(parent_counts)), parent_counts)


def build_taxonomy(rng: np.random.Generator, n_species: int) -> Taxonomy:
    """A random tree with ``n_species`` species (at least one per order that gets any)."""
    shares = np.array([share for _, _, share in ORDERS])
    per_order = allocate(n_species, shares)
    kept = np.flatnonzero(per_order > 0)
    class_names = list(dict.fromkeys(ORDERS[i][0] for i in kept))
    order_names = [ORDERS[i][1] for i in kept]
    order_class = np.array([class_names.index(ORDERS[i][0]) for i in kept], dtype=np.int32)
    per_order = per_order[kept]

    # Families: far fewer than species, growing slowly with the order's size (Diptera ~100+ at full scale).
    families_per_order = [max(1, min(int(n), round(1.1 * n**0.42))) for n in per_order]
    species_per_family = np.concatenate(
        [split_counts(rng, int(n), f, 1.1, 0.6) for n, f in zip(per_order, families_per_order)]
    )
    family_order = _children(np.array(families_per_order)).astype(np.int32)

    genus_counts, subfamily_counts, genus_subfamily_local = [], [], []
    species_per_genus_parts = []
    for n_sp in species_per_family.tolist():
        n_genera = max(1, min(n_sp, round(n_sp**0.85 / 1.6)))
        per_genus = split_counts(rng, n_sp, n_genera, 1.0, 0.7)
        species_per_genus_parts.append(per_genus)
        genus_counts.append(len(per_genus))
        if len(per_genus) >= 2 and rng.random() < SUBFAMILY_SHARE:
            n_sub = max(1, min(len(per_genus), round(len(per_genus) ** 0.45)))
            sub_sizes = split_counts(rng, len(per_genus), n_sub, 1.0, 0.5)
            subfamily_counts.append(len(sub_sizes))
            genus_subfamily_local.append(rng.permutation(_children(sub_sizes)))
        else:
            subfamily_counts.append(0)
            genus_subfamily_local.append(np.full(len(per_genus), -1))
    genus_family = _children(np.array(genus_counts)).astype(np.int32)
    subfamily_family = _children(np.array(subfamily_counts)).astype(np.int32)
    sub_offsets = np.concatenate([[0], np.cumsum(subfamily_counts)[:-1]])
    genus_subfamily = np.concatenate(
        [np.where(local >= 0, local + off, -1) for local, off in zip(genus_subfamily_local, sub_offsets)]
    ).astype(np.int32)
    species_per_genus = np.concatenate(species_per_genus_parts)
    species_genus = _children(species_per_genus).astype(np.int32)
    genus_start = np.concatenate([[0], np.cumsum(species_per_genus)[:-1]])
    species_rank_in_genus = (np.arange(len(species_genus)) - genus_start[species_genus]).astype(np.int32)

    n_genera = len(genus_family)
    genus_described = rng.random(n_genera) >= UNDESCRIBED_GENUS_SHARE

    # BINs: most species are one BIN; some split into two or three (deep intraspecific lineages).
    u = rng.random(n_species)
    bins_per_species = 1 + (u < 0.12) + (u < 0.03)
    bin_species = _children(bins_per_species).astype(np.int32)
    first_bin = np.concatenate([[0], np.cumsum(bins_per_species)[:-1]])
    codes = names.bin_codes(rng, len(bin_species))
    # A few species are so young that BOLD lumps them into their elder sister's BIN.
    recent = (species_rank_in_genus > 0) & (rng.random(n_species) < SHARED_BIN_SHARE)
    for species in np.flatnonzero(recent).tolist():
        codes[first_bin[species]] = codes[first_bin[species - 1]]

    return Taxonomy(
        class_names=class_names,
        order_names=order_names,
        order_class=order_class,
        family_names=names.family_names(rng, len(family_order)),
        family_order=family_order,
        subfamily_names=names.subfamily_names(rng, len(subfamily_family)),
        subfamily_family=subfamily_family,
        genus_names=names.genus_names(rng, n_genera),
        genus_family=genus_family,
        genus_subfamily=genus_subfamily,
        genus_described=genus_described,
        species_genus=species_genus,
        species_rank_in_genus=species_rank_in_genus,
        species_recent=recent,
        bin_species=bin_species,
        bin_code=codes,
    )
