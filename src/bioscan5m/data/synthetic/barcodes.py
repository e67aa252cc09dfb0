"""COI-like DNA barcodes that evolve down the synthetic tree.

A root sequence with insect mitochondrial composition (A+T about 68 %, third codon positions about 87 % A+T)
mutates along every edge of the tree: class → order → family → subfamily → genus → species → BIN →
haplotype. Sites evolve at different speeds (third codon positions ~10x faster than first, ~30x faster than
second, plus gamma-distributed site rates), and a mutated site draws its new base from the composition of its
codon position (an F81-like model), so composition stays stable while distance grows with taxonomic
separation and saturates between distant orders, as real COI does.

Sequences are ASCII bytes (``b"ACGT"``) in ``uint8`` arrays of :data:`ALIGNED_LENGTH` columns: the 658 bp
barcode region followed by a short 3' flank that longer reads run into.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bioscan5m.data.synthetic import hashing
from bioscan5m.data.synthetic.taxonomy import Taxonomy

#: Length of the standard COI-5P barcode region.
BARCODE_LENGTH = 658
#: Columns simulated per haplotype: the barcode region plus a flank that reads longer than 658 bp reach.
ALIGNED_LENGTH = 680
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
#: Base composition (A, C, G, T) at codon positions 1, 2 and 3 of insect COI.
_COMPOSITION = np.array(
    [
        [0.30, 0.17, 0.25, 0.28],
        [0.18, 0.24, 0.15, 0.43],
        [0.45, 0.08, 0.05, 0.42],
    ]
)
#: Relative substitution rate of codon positions 1, 2 and 3.
_CODON_RATES = np.array([0.10, 0.03, 1.0])
#: Mean substitutions per site along one edge into each rank (before per-node variation).
BRANCH_LENGTHS = {
    "class": 1.2,
    "order": 0.6,
    "family": 0.35,
    "subfamily": 0.05,
    "genus": 0.10,
    "species": 0.035,
}
#: Mean substitutions per site from a species to a second or third BIN (deep intraspecific lineages).
SECONDARY_BIN_LENGTH = 0.02
#: Mean substitutions per site separating sister species that share a BIN.
RECENT_SPECIES_LENGTH = 0.004
#: Mean number of extra mutations of a non-consensus haplotype relative to its BIN consensus.
HAPLOTYPE_MUTATIONS = 1.6

# Streams of the counter-based generator used for per-read choices (see hashing.py).
_STREAM_READ = 11


@dataclass(frozen=True)
class _Sites:
    """Per-column model: codon position (0, 1, 2), relative rate and the cumulative rate (for sampling)."""

    codon: np.ndarray
    rate: np.ndarray
    cdf: np.ndarray

    @classmethod
    def make(cls, rng: np.random.Generator) -> _Sites:
        codon = (np.arange(ALIGNED_LENGTH) % 3).astype(np.uint8)
        # Gamma(shape 0.6) rate heterogeneity: a few fast sites, many slow ones (invariant-like).
        rate = _CODON_RATES[codon] * rng.gamma(0.6, 1 / 0.6, ALIGNED_LENGTH)
        rate *= ALIGNED_LENGTH / rate.sum()  # mean rate 1: branch lengths are substitutions per site
        cdf = np.cumsum(rate) / rate.sum()
        return cls(codon=codon, rate=rate, cdf=cdf)


def _draw_bases(codon: np.ndarray, u: np.ndarray) -> np.ndarray:
    """ASCII bases drawn from the composition of each codon position, given uniforms ``u``."""
    cumulative = np.cumsum(_COMPOSITION, axis=1)
    bases = np.empty(len(u), dtype=np.uint8)
    for position in range(3):
        chosen = codon == position
        picks = np.searchsorted(cumulative[position, :3], u[chosen], side="right")
        bases[chosen] = _BASES[picks]
    return bases


_APPLY_BLOCK = 32768
_TRANSITION = np.arange(256, dtype=np.uint8)
_TRANSITION[[ord("A"), ord("G"), ord("C"), ord("T")]] = [ord("G"), ord("A"), ord("T"), ord("C")]


@dataclass(frozen=True)
class Mutations:
    """Mutations of many nodes in compressed rows: node ``i`` owns ``position/base[offset[i]:offset[i+1]]``.

    ``base`` is None for transitions (A<->G, C<->T), which always change the base: they make the
    haplotypes within a BIN, as transitions dominate young mitochondrial variation.
    """

    offset: np.ndarray  # int64, len n_nodes + 1
    position: np.ndarray  # uint16
    base: np.ndarray | None  # uint8 (ASCII)

    def apply(self, sequences: np.ndarray, nodes: np.ndarray) -> None:
        """Overwrite ``sequences[i]`` (in place) with the mutations of ``nodes[i]``, for every row i."""
        # In blocks of rows, so the index arrays stay small even for half a million species.
        for lo in range(0, len(nodes), _APPLY_BLOCK):
            self._apply(sequences[lo : lo + _APPLY_BLOCK], nodes[lo : lo + _APPLY_BLOCK])

    def _apply(self, sequences: np.ndarray, nodes: np.ndarray) -> None:
        starts, ends = self.offset[nodes], self.offset[nodes + 1]
        counts = ends - starts
        total = int(counts.sum())
        if total == 0:
            return
        rows = np.repeat(np.arange(len(nodes)), counts)
        within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        events = np.repeat(starts, counts) + within
        columns = self.position[events]
        if self.base is None:
            sequences[rows, columns] = _TRANSITION[sequences[rows, columns]]
        else:
            sequences[rows, columns] = self.base[events]


def _mutations(
    rng: np.random.Generator,
    sites: _Sites,
    expected: np.ndarray,
    minimum: np.ndarray | int = 0,
    transitions: bool = False,
) -> Mutations:
    """``minimum[i]`` + Poisson(``expected[i]``) mutations for each node i, at rate-weighted sites; new bases
    drawn from the codon position's composition, or ``transitions`` of the current base."""
    counts = rng.poisson(expected) + minimum
    offset = np.concatenate([[0], np.cumsum(counts)])
    position = np.searchsorted(sites.cdf, rng.random(int(offset[-1])), side="right")
    position = np.minimum(position, ALIGNED_LENGTH - 1).astype(np.uint16)
    base = None if transitions else _draw_bases(sites.codon[position], rng.random(len(position)))
    return Mutations(offset=offset, position=position, base=base)


def _evolve(rng: np.random.Generator, sites: _Sites, parents: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Child sequences: copies of ``parents`` rows with ``length`` substitutions per site (per row)."""
    children = parents.copy()
    _mutate(rng, sites, children, length)
    return children


def _mutate(rng: np.random.Generator, sites: _Sites, sequences: np.ndarray, length: np.ndarray) -> None:
    """Add ``length[i]`` substitutions per site to row i of ``sequences``, in place (in blocks of rows,
    so that memory stays small for half a million species)."""
    for lo in range(0, len(sequences), _APPLY_BLOCK):
        block = slice(lo, lo + _APPLY_BLOCK)
        mutations = _mutations(rng, sites, length[block] * ALIGNED_LENGTH)
        mutations.apply(sequences[block], np.arange(len(length[block])))


def _edge_lengths(rng: np.random.Generator, rank: str, count: int) -> np.ndarray:
    """Per-node branch lengths into ``rank``: the rank's mean times log-normal rate variation."""
    return BRANCH_LENGTHS[rank] * rng.lognormal(-0.08, 0.4, count)


@dataclass(frozen=True)
class BarcodeModel:
    """Every species' consensus sequence plus the mutations that make its BINs and haplotypes.

    ``species`` holds one row per species (``uint8`` ASCII, :data:`ALIGNED_LENGTH` columns);
    a haplotype is identified by a global id: BIN ``b`` owns ids ``hap_offset[b]`` .. ``hap_offset[b+1]-1``,
    the first being the BIN's consensus.
    """

    species: np.ndarray
    bin_species: np.ndarray
    bin_mutations: Mutations
    hap_bin: np.ndarray
    hap_offset: np.ndarray
    hap_mutations: Mutations

    def haplotypes(self, haps: np.ndarray) -> np.ndarray:
        """Full aligned sequences of the haplotypes ``haps``: ``uint8[len(haps), ALIGNED_LENGTH]``."""
        bins = self.hap_bin[haps]
        sequences = self.species[self.bin_species[bins]]
        self.bin_mutations.apply(sequences, bins)
        self.hap_mutations.apply(sequences, haps)
        return sequences


def build_barcodes(
    rng: np.random.Generator, taxonomy: Taxonomy, haplotypes_per_bin: np.ndarray
) -> BarcodeModel:
    """Evolve sequences down ``taxonomy``; BIN ``b`` gets ``haplotypes_per_bin[b]`` haplotypes."""
    sites = _Sites.make(rng)
    root = _draw_bases(sites.codon, rng.random(ALIGNED_LENGTH))[None, :]

    classes = _evolve(
        rng,
        sites,
        np.repeat(root, len(taxonomy.class_names), 0),
        _edge_lengths(rng, "class", len(taxonomy.class_names)),
    )
    orders = _evolve(
        rng, sites, classes[taxonomy.order_class], _edge_lengths(rng, "order", len(taxonomy.order_class))
    )
    families = _evolve(
        rng, sites, orders[taxonomy.family_order], _edge_lengths(rng, "family", len(taxonomy.family_order))
    )
    subfamilies = _evolve(
        rng,
        sites,
        families[taxonomy.subfamily_family],
        _edge_lengths(rng, "subfamily", len(taxonomy.subfamily_family)),
    )
    # A genus hangs from its subfamily where the family has subfamilies, else straight from the family.
    has_sub = taxonomy.genus_subfamily >= 0
    genus_parents = families[taxonomy.genus_family]
    genus_parents[has_sub] = subfamilies[taxonomy.genus_subfamily[has_sub]]
    genus_lengths = _edge_lengths(rng, "genus", len(taxonomy.genus_family))
    genus_lengths[~has_sub] += BRANCH_LENGTHS["subfamily"]
    genera = _evolve(rng, sites, genus_parents, genus_lengths)
    del classes, orders, families, subfamilies, genus_parents

    species_lengths = _edge_lengths(rng, "species", taxonomy.n_species)
    species_lengths[taxonomy.species_recent] = RECENT_SPECIES_LENGTH
    species = genera[taxonomy.species_genus]
    del genera
    recent = np.flatnonzero(taxonomy.species_recent)
    # Recent species bud off their elder sister, not off the genus ancestor (so they share its BIN).
    species[recent] = species[recent - 1]
    _mutate(rng, sites, species, species_lengths)

    bin_species = taxonomy.bin_species
    first_bin = np.r_[True, bin_species[1:] != bin_species[:-1]]
    bin_lengths = np.where(first_bin, 0.0015, SECONDARY_BIN_LENGTH * rng.lognormal(0, 0.4, len(bin_species)))
    bin_mutations = _mutations(rng, sites, bin_lengths * ALIGNED_LENGTH)

    haplotypes_per_bin = np.asarray(haplotypes_per_bin, dtype=np.int64)
    hap_offset = np.concatenate([[0], np.cumsum(haplotypes_per_bin)])
    hap_bin = np.repeat(np.arange(len(bin_species)), haplotypes_per_bin).astype(np.int32)
    consensus = np.zeros(int(hap_offset[-1]), dtype=bool)
    consensus[hap_offset[:-1]] = True
    # Non-consensus haplotypes differ from their BIN's consensus by at least one transition.
    hap_mutations = _mutations(
        rng,
        sites,
        np.where(consensus, 0.0, HAPLOTYPE_MUTATIONS - 1.0),
        (~consensus).astype(np.int64),
        transitions=True,
    )
    return BarcodeModel(
        species=species,
        bin_species=bin_species,
        bin_mutations=bin_mutations,
        hap_bin=hap_bin,
        hap_offset=hap_offset,
        hap_mutations=hap_mutations,
    )


@dataclass(frozen=True)
class ReadProfiles:
    """How each read covers its haplotype: columns ``[start, end)``, N runs at the ends, single Ns and
    ambiguity codes. All arrays have one row per read."""

    start: np.ndarray
    end: np.ndarray
    lead_n: np.ndarray
    trail_n: np.ndarray
    single_n: np.ndarray  # int16[n, 3]: interior columns set to N (-1: none)
    ambiguous: np.ndarray  # int16: one interior column set to an IUPAC ambiguity code (-1: none)


def read_profiles(seed: int, keys: np.ndarray) -> ReadProfiles:
    """Deterministic read profiles for reads identified by ``keys`` (same key, same read).

    Lengths: 55 % exactly 658 bp, 30 % trimmed to 600-657, 7 % run into the flank (659-680, so loaders
    truncating to 660 matter), 8 % short (250-600). About 6 % end in a run of N, 2 % start with one,
    3 % carry 1-3 single Ns and 0.4 % one IUPAC ambiguity code.
    """
    keys = np.asarray(keys, dtype=np.uint64)

    def u(field: int) -> np.ndarray:
        return hashing.uniform(seed, _STREAM_READ, keys, field)

    kind = u(0)
    n = len(keys)
    start = np.zeros(n, dtype=np.int64)
    end = np.full(n, BARCODE_LENGTH, dtype=np.int64)
    trimmed = (kind >= 0.55) & (kind < 0.85)
    start[trimmed] = np.minimum(30, np.floor(-np.log1p(-u(1)[trimmed]) * 5)).astype(np.int64) * (
        u(2)[trimmed] < 0.5
    )
    end[trimmed] -= np.minimum(50, np.floor(-np.log1p(-u(3)[trimmed]) * 12)).astype(np.int64)
    long = (kind >= 0.85) & (kind < 0.92)
    end[long] += 1 + np.floor(u(4)[long] * (ALIGNED_LENGTH - BARCODE_LENGTH)).astype(np.int64)
    short = kind >= 0.92
    length = 250 + np.floor(u(5)[short] * 350).astype(np.int64)
    start[short] = np.floor(u(6)[short] * (BARCODE_LENGTH - length)).astype(np.int64)
    end[short] = start[short] + length
    span = end - start

    trail_n = np.where(u(7) < 0.06, np.minimum(60, 1 + np.floor(-np.log1p(-u(8)) * 10)), 0).astype(np.int64)
    lead_n = np.where(u(9) < 0.02, np.minimum(25, 1 + np.floor(-np.log1p(-u(10)) * 5)), 0).astype(np.int64)
    interior = np.maximum(span - lead_n - trail_n - 20, 1)
    single_n = np.full((n, 3), -1, dtype=np.int64)
    has_single = u(11) < 0.03
    how_many = 1 + np.floor(u(12) * 3).astype(np.int64)
    for k in range(3):
        chosen = has_single & (how_many > k)
        single_n[chosen, k] = (start + lead_n + 10 + np.floor(u(13 + k) * interior))[chosen]
    ambiguous = np.where(u(16) < 0.004, start + lead_n + 10 + np.floor(u(17) * interior), -1).astype(np.int64)
    return ReadProfiles(start, end, lead_n, trail_n, single_n, ambiguous)


_AMBIGUITY = np.frombuffer(b"RYKMSW", dtype=np.uint8)
_N = ord("N")


def _fill_runs(
    reads: np.ndarray, rows: np.ndarray, starts: np.ndarray, lengths: np.ndarray, value: int
) -> None:
    """Set ``reads[rows[i], starts[i] : starts[i] + lengths[i]]`` to ``value`` for every i (in place)."""
    total = int(lengths.sum())
    if total == 0:
        return
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    reads[np.repeat(rows, lengths), np.repeat(starts, lengths) + within] = value


def render_reads(sequences: np.ndarray, profiles: ReadProfiles, seed: int, keys: np.ndarray) -> list[str]:
    """The barcode strings of reads: row i of ``sequences`` read through ``profiles`` row i."""
    reads = sequences.copy()
    rows = np.arange(len(reads))
    lead = profiles.lead_n > 0
    _fill_runs(reads, rows[lead], profiles.start[lead], profiles.lead_n[lead], _N)
    trail = profiles.trail_n > 0
    _fill_runs(reads, rows[trail], profiles.end[trail] - profiles.trail_n[trail], profiles.trail_n[trail], _N)
    for k in range(profiles.single_n.shape[1]):
        chosen = profiles.single_n[:, k] >= 0
        reads[rows[chosen], profiles.single_n[chosen, k]] = _N
    chosen = profiles.ambiguous >= 0
    pick = np.floor(hashing.uniform(seed, _STREAM_READ, np.asarray(keys, dtype=np.uint64)[chosen], 99) * 6)
    reads[rows[chosen], profiles.ambiguous[chosen]] = _AMBIGUITY[pick.astype(np.int64)]
    text = reads.tobytes().decode("ascii")
    width = reads.shape[1]
    offsets = rows * width
    return [
        text[o + s : o + e]
        for o, s, e in zip(offsets.tolist(), profiles.start.tolist(), profiles.end.tolist())
    ]
