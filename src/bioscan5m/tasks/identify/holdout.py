"""Held-out queries for measuring identification on records with known taxonomy.

Two kinds of query, as in the BIOSCAN-5M benchmark: *seen* records, whose species keeps other records in
the reference (scored at species), and *unseen* species, all of whose records leave the reference
(scored at genus, so only species from genera with at least two species are chosen).
"""

from __future__ import annotations

import numpy as np

REFERENCE, SEEN, UNSEEN = "reference", "seen", "unseen"


def holdout_split(species: np.ndarray, genus: np.ndarray, *, seen_fraction: float = 0.05,
                  unseen_fraction: float = 0.15, min_records: int = 10, seed: int = 0) -> np.ndarray:
    """Role of every record: ``"reference"``, ``"seen"`` or ``"unseen"`` (object array, shape ``(n,)``).

    ``unseen``: every record of a random ``unseen_fraction`` of the species of genera with >= 2 species.
    ``seen``: a random ``seen_fraction`` of the other records of species with >= ``min_records`` records.
    Records without a species or genus name stay in the reference. Same ``seed``, same split.
    """
    rng = np.random.default_rng(seed)
    species = np.asarray(species, dtype=object)
    genus = np.asarray(genus, dtype=object)
    named = np.array([isinstance(s, str) and bool(s) for s in species]) & np.array(
        [isinstance(g, str) and bool(g) for g in genus])
    pairs = sorted({(g, s) for g, s, n in zip(genus, species, named) if n})
    genus_of = {s: g for g, s in pairs}
    species_per_genus: dict[str, int] = {}
    for g, _ in pairs:
        species_per_genus[g] = species_per_genus.get(g, 0) + 1
    eligible = np.array(sorted(s for s, g in genus_of.items() if species_per_genus[g] >= 2), dtype=object)
    hidden = set(rng.choice(eligible, round(unseen_fraction * len(eligible)), replace=False)) if len(
        eligible) else set()
    roles = np.full(len(species), REFERENCE, dtype=object)
    is_unseen = named & np.array([s in hidden for s in species])
    roles[is_unseen] = UNSEEN
    names, counts = np.unique(species[named], return_counts=True)
    big = set(names[counts >= min_records])
    candidates = np.flatnonzero(named & ~is_unseen & np.array([s in big for s in species]))
    roles[rng.choice(candidates, round(seen_fraction * len(candidates)), replace=False)] = SEEN
    return roles
