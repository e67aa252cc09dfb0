"""Invented but Latin-looking taxon names (``Thymelidae``, ``Pheromyia scalata``) and BOLD-style codes.

Names are drawn from syllables with a seeded generator, so a seed always gives the same names, and every
name is checked for uniqueness where the taxonomy needs it (families, genera, epithets within a genus).
"""

from __future__ import annotations

import numpy as np

_SYLLABLES = (
    "ba",
    "be",
    "bi",
    "bra",
    "ca",
    "ce",
    "ci",
    "cla",
    "co",
    "cro",
    "cu",
    "da",
    "de",
    "di",
    "do",
    "dro",
    "du",
    "fa",
    "fe",
    "fi",
    "ga",
    "ge",
    "gi",
    "glo",
    "go",
    "gra",
    "la",
    "le",
    "li",
    "lo",
    "lu",
    "ma",
    "me",
    "mi",
    "mo",
    "mu",
    "na",
    "ne",
    "ni",
    "no",
    "nu",
    "pa",
    "pe",
    "pi",
    "pla",
    "po",
    "pro",
    "pu",
    "ra",
    "re",
    "ri",
    "ro",
    "ru",
    "sa",
    "se",
    "si",
    "so",
    "ste",
    "stro",
    "su",
    "ta",
    "te",
    "ti",
    "to",
    "tri",
    "tu",
    "va",
    "ve",
    "vi",
    "xa",
    "xe",
    "zo",
    "pha",
    "phi",
    "pho",
    "tha",
    "the",
    "chi",
    "cho",
    "rha",
    "rhi",
    "pte",
    "psy",
    "cly",
    "dry",
    "gly",
    "myr",
    "lyc",
    "scy",
    "hyl",
    "eu",
    "eri",
    "ocy",
    "ana",
    "oxy",
)
_FAMILY_END = "idae"
_SUBFAMILY_END = "inae"
_GENUS_ENDS = (
    "a",
    "us",
    "ia",
    "ella",
    "omyia",
    "ops",
    "ina",
    "ius",
    "ites",
    "ax",
    "odes",
    "ula",
    "ocera",
    "oneura",
    "ophora",
    "opsis",
    "ogaster",
    "ura",
    "on",
    "ellus",
    "iella",
    "eris",
    "ix",
)
_EPITHET_ENDS = (
    "a",
    "us",
    "um",
    "ensis",
    "i",
    "ae",
    "oides",
    "ata",
    "atus",
    "icus",
    "ica",
    "iformis",
    "ipes",
    "ella",
    "ellus",
    "osa",
    "osus",
    "ina",
    "alis",
)
_VOWELS = frozenset("aeiouy")
_UPPER = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def _join(stem: str, ending: str) -> str:
    """Glue an ending to a stem without a double vowel (``thola`` + ``idae`` -> ``tholidae``)."""
    if stem and ending and stem[-1] in _VOWELS and ending[0] in _VOWELS:
        stem = stem[:-1]
    return stem + ending


def _stems(rng: np.random.Generator, count: int, syllables: tuple[int, int]) -> list[str]:
    """``count`` random stems of ``syllables[0]``..``syllables[1]`` syllables (may repeat)."""
    lengths = rng.integers(syllables[0], syllables[1] + 1, size=count)
    picks = rng.integers(0, len(_SYLLABLES), size=(count, syllables[1]))
    return ["".join(_SYLLABLES[i] for i in row[:n]) for row, n in zip(picks.tolist(), lengths.tolist())]


def unique_names(
    rng: np.random.Generator,
    count: int,
    endings: tuple[str, ...] | list[str],
    *,
    syllables: tuple[int, int] = (2, 3),
    capitalize: bool = True,
    taken: set[str] | None = None,
) -> list[str]:
    """``count`` distinct names, each a random stem plus one of ``endings``, none already in ``taken``."""
    taken = set() if taken is None else taken
    names: list[str] = []
    while len(names) < count:
        need = count - len(names)
        stems = _stems(rng, need + need // 4 + 8, syllables)
        ends = rng.integers(0, len(endings), size=len(stems))
        for stem, end in zip(stems, ends.tolist()):
            name = _join(stem, endings[end])
            if capitalize:
                name = name.capitalize()
            if len(name) < 5 or name in taken:
                continue
            taken.add(name)
            names.append(name)
            if len(names) == count:
                break
    return names


def family_names(rng: np.random.Generator, count: int) -> list[str]:
    """Distinct family names ending in ``-idae``."""
    return unique_names(rng, count, (_FAMILY_END,), syllables=(2, 3))


def subfamily_names(rng: np.random.Generator, count: int) -> list[str]:
    """Distinct subfamily names ending in ``-inae``."""
    return unique_names(rng, count, (_SUBFAMILY_END,), syllables=(2, 3))


def genus_names(rng: np.random.Generator, count: int) -> list[str]:
    """Distinct capitalised genus names (``Pheromyia``, ``Dactilops``)."""
    return unique_names(rng, count, _GENUS_ENDS, syllables=(2, 3))


def epithets(rng: np.random.Generator, count: int) -> list[str]:
    """Distinct lower-case species epithets (unique within the call, i.e. within one genus)."""
    return unique_names(rng, count, _EPITHET_ENDS, syllables=(1, 3), capitalize=False)


def project_codes(rng: np.random.Generator, count: int) -> list[str]:
    """Distinct BOLD project codes of four or five capital letters (``AACTA``, ``YGEN``)."""
    codes: list[str] = []
    taken: set[str] = set()
    while len(codes) < count:
        lengths = rng.integers(4, 6, size=count)
        letters = _UPPER[rng.integers(0, 26, size=(count, 5))]
        for row, n in zip(letters, lengths.tolist()):
            code = "".join(row[:n])
            if code not in taken:
                taken.add(code)
                codes.append(code)
                if len(codes) == count:
                    break
    return codes


def bin_codes(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct Barcode Index Numbers like ``BOLD:ACF1234``, in random order."""
    # BOLD has so far used AAA0000 .. AFZ9999: a fixed "A", then A-F, then A-Z, then four digits.
    space = 6 * 26 * 10000
    if count > space:
        raise ValueError(f"cannot make {count} distinct BIN codes (at most {space})")
    picks = rng.choice(space, size=count, replace=False)
    letters, digits = np.divmod(picks, 10000)
    second, third = np.divmod(letters, 26)
    return [
        f"BOLD:A{_UPPER[b]}{_UPPER[c]}{d:04d}"
        for b, c, d in zip(second.tolist(), third.tolist(), digits.tolist())
    ]
