"""data.partition.unseen_taxa: the one choice of hidden taxa behind the probes' and identify's hold-outs."""

import numpy as np
import pytest

from bioscan5m.data.partition import unseen_taxa
from bioscan5m.errors import BioscanError

# genus g1: species a (4 records), b (2), c (2); g2: d (3), e (1); g3: f alone (2); two unnamed records.
SPECIES = np.array(["a"] * 4 + ["b"] * 2 + ["c"] * 2 + ["d"] * 3 + ["e"] + ["f"] * 2 + [None, ""], dtype=object)
GENUS = np.array(["g1"] * 8 + ["g2"] * 4 + ["g3"] * 2 + ["g1", np.nan], dtype=object)


def test_a_fraction_of_the_eligible_species_is_drawn_at_once():
    for seed in range(20):
        hidden = unseen_taxa(SPECIES, GENUS, 0.4, np.random.default_rng(seed), of="taxa")
        assert len(hidden) == 2 and set(hidden) <= {"a", "b", "c", "d", "e"}  # f is its genus's only one


def test_records_are_hidden_until_the_fraction_each_genus_keeping_a_species():
    for seed in range(20):
        hidden = unseen_taxa(SPECIES, GENUS, 0.5, np.random.default_rng(seed))
        assert "f" not in hidden and not {"a", "b", "c"} <= set(hidden) and not {"d", "e"} <= set(hidden)
        held = int(np.isin(SPECIES, hidden).sum())
        assert held >= 0.5 * len(SPECIES) or len(hidden) == 3  # stopped at the fraction, or nothing left
    same = [unseen_taxa(SPECIES, GENUS, 0.5, np.random.default_rng(3)) for _ in range(2)]
    assert same[0] == same[1]


def test_an_unknown_count_is_refused():
    with pytest.raises(BioscanError, match="'records' or 'taxa'"):
        unseen_taxa(SPECIES, GENUS, 0.5, np.random.default_rng(0), of="genera")
