"""What a synthetic specimen looks like, inherited down the tree, and where it sits in its photo.

* order → body plan (proportions of head, thorax, abdomen; wings: number, shape, opacity; legs; antennae);
* family → colours and small changes of proportions and size;
* genus → pattern (bands, spots, a stripe, two-tone) and its colour;
* species → small cues (tint, brightness, spot size, size);
* record → pose (rotation, wing and leg spread), lighting and framing.

Coarse ranks therefore differ a lot and species only a little, as in BIOSCAN-5M photos. Sizes are in pixels
of the 1024 x 768 original photo, from which the metadata's size columns are computed (see :func:`frames`).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace

import numpy as np

from bioscan5m.data.synthetic import hashing
from bioscan5m.data.synthetic.taxonomy import Taxonomy

#: Size of the original BIOSCAN photos, in pixels (width, height).
ORIGINAL_SIZE = (1024, 768)
#: Side of the 256 px packages' shorter edge.
SHORT_SIDE_256 = 256

_STREAM_FAMILY, _STREAM_GENUS, _STREAM_SPECIES, _STREAM_POSE, _STREAM_ORDER = 21, 22, 23, 24, 25


@dataclass(frozen=True)
class BodyPlan:
    """Proportions of one order's body, in units of body length (head + thorax + waist + abdomen = 1)."""

    head: tuple[float, float]  # (length, width)
    thorax: tuple[float, float]
    abdomen: tuple[float, float]
    waist: float = 0.0  # gap between thorax and abdomen (petiole of wasps)
    wing_pairs: int = 0
    wing_kind: str = "membrane"  # membrane, scaled, elytra, fringe
    wing_length: float = 0.0
    wing_width: float = 0.0
    wing_alpha: float = 0.3  # 0 = invisible, 1 = opaque
    wing_spread: float = 0.4  # radians away from the body axis
    wings_below: bool = False  # drawn under the body (spread butterfly-like wings)
    leg_pairs: int = 3
    leg_length: float = 0.8
    leg_width: float = 0.014
    antenna_length: float = 0.3
    antenna_elbow: bool = False
    eye: float = 0.5  # eye diameter relative to head width
    segments: int = 6  # visible abdominal segments
    tails: float = 0.0  # cerci length (mayflies, silverfish)
    log_length: float = float(np.log(180.0))  # mean log body length, original-photo pixels
    darkness: float = 0.0  # shift of typical colour value (-: paler, +: darker)
    grey: float = 0.0  # loss of saturation (springtails, mites)


_TEMPLATES: dict[str, BodyPlan] = {
    "fly": BodyPlan((0.18, 0.21), (0.30, 0.27), (0.52, 0.23), wing_pairs=1, wing_length=0.95, wing_width=0.3,
                    wing_alpha=0.28, wing_spread=0.45, leg_length=0.75, antenna_length=0.14, eye=0.85,
                    log_length=float(np.log(170))),
    "wasp": BodyPlan((0.2, 0.2), (0.28, 0.2), (0.44, 0.21), waist=0.08, wing_pairs=2, wing_length=0.85,
                     wing_width=0.22, wing_alpha=0.22, wing_spread=0.3, leg_length=0.7, antenna_length=0.6,
                     antenna_elbow=True, eye=0.5, darkness=0.25, log_length=float(np.log(200))),
    "bug": BodyPlan((0.15, 0.22), (0.3, 0.4), (0.55, 0.37), wing_pairs=1, wing_kind="elytra",
                    wing_length=0.62, wing_width=0.2, wing_alpha=0.6, wing_spread=0.06, leg_length=0.6,
                    antenna_length=0.45, eye=0.45, log_length=float(np.log(160))),
    "moth": BodyPlan((0.12, 0.15), (0.3, 0.2), (0.58, 0.16), wing_pairs=2, wing_kind="scaled",
                     wing_length=1.0, wing_width=0.55, wing_alpha=0.95, wing_spread=1.0, wings_below=True,
                     leg_length=0.5, antenna_length=0.55, eye=0.45, log_length=float(np.log(300))),
    "beetle": BodyPlan((0.16, 0.26), (0.22, 0.42), (0.62, 0.5), wing_pairs=1, wing_kind="elytra",
                       wing_length=0.6, wing_width=0.26, wing_alpha=1.0, wing_spread=0.0, leg_length=0.55,
                       antenna_length=0.35, eye=0.35, darkness=0.15, log_length=float(np.log(170))),
    "louse": BodyPlan((0.3, 0.36), (0.22, 0.3), (0.48, 0.44), wing_pairs=2, wing_length=1.0, wing_width=0.34,
                      wing_alpha=0.25, wing_spread=0.12, leg_length=0.6, antenna_length=0.9, eye=0.4,
                      darkness=-0.2, log_length=float(np.log(110))),
    "thrips": BodyPlan((0.14, 0.14), (0.2, 0.17), (0.66, 0.16), wing_pairs=2, wing_kind="fringe",
                       wing_length=0.8, wing_width=0.07, wing_alpha=0.45, wing_spread=0.06, leg_length=0.4,
                       antenna_length=0.25, eye=0.4, darkness=0.35, segments=9,
                       log_length=float(np.log(120))),
    "caddis": BodyPlan((0.12, 0.17), (0.25, 0.2), (0.63, 0.2), wing_pairs=2, wing_kind="scaled",
                       wing_length=1.1, wing_width=0.33, wing_alpha=0.8, wing_spread=0.12, leg_length=0.8,
                       antenna_length=1.2, eye=0.45, log_length=float(np.log(260))),
    "lacewing": BodyPlan((0.14, 0.17), (0.25, 0.2), (0.61, 0.17), wing_pairs=2, wing_length=1.25,
                         wing_width=0.4, wing_alpha=0.18, wing_spread=0.35, leg_length=0.6,
                         antenna_length=0.9, eye=0.55, darkness=-0.2, log_length=float(np.log(280))),
    "cricket": BodyPlan((0.2, 0.26), (0.25, 0.3), (0.55, 0.27), wing_pairs=1, wing_kind="elytra",
                        wing_length=0.75, wing_width=0.16, wing_alpha=0.7, wing_spread=0.05, leg_length=1.0,
                        antenna_length=1.1, eye=0.35, log_length=float(np.log(280))),
    "mayfly": BodyPlan((0.15, 0.17), (0.27, 0.2), (0.58, 0.15), wing_pairs=2, wing_length=0.95,
                       wing_width=0.38, wing_alpha=0.2, wing_spread=0.9, leg_length=0.7, antenna_length=0.1,
                       eye=0.7, tails=0.9, log_length=float(np.log(260))),
    "dragonfly": BodyPlan((0.1, 0.18), (0.18, 0.16), (0.72, 0.08), wing_pairs=2, wing_length=0.8,
                          wing_width=0.15, wing_alpha=0.15, wing_spread=1.4, leg_length=0.3,
                          antenna_length=0.05, eye=0.95, segments=10, log_length=float(np.log(450))),
    "stick": BodyPlan((0.08, 0.07), (0.42, 0.07), (0.5, 0.07), leg_length=0.8, antenna_length=0.5, eye=0.3,
                      log_length=float(np.log(420))),
    "spider": BodyPlan((0.05, 0.12), (0.4, 0.38), (0.55, 0.46), leg_pairs=4, leg_length=1.1, leg_width=0.02,
                       antenna_length=0.0, eye=0.2, segments=0, log_length=float(np.log(180))),
    "mite": BodyPlan((0.08, 0.14), (0.32, 0.55), (0.6, 0.62), leg_pairs=4, leg_length=0.45, leg_width=0.03,
                     antenna_length=0.0, eye=0.0, segments=0, darkness=0.1, log_length=float(np.log(70))),
    "harvestman": BodyPlan((0.05, 0.14), (0.35, 0.5), (0.6, 0.55), leg_pairs=4, leg_length=2.0,
                           leg_width=0.02, antenna_length=0.0, eye=0.15, segments=0,
                           log_length=float(np.log(120))),
    "springtail": BodyPlan((0.18, 0.2), (0.3, 0.22), (0.52, 0.22), leg_length=0.35, antenna_length=0.45,
                           eye=0.2, grey=0.6, segments=5, log_length=float(np.log(110))),
    "globular": BodyPlan((0.3, 0.36), (0.1, 0.4), (0.6, 0.72), leg_length=0.3, antenna_length=0.5, eye=0.2,
                         grey=0.4, segments=0, log_length=float(np.log(70))),
    "woodlouse": BodyPlan((0.1, 0.35), (0.3, 0.5), (0.6, 0.5), leg_pairs=7, leg_length=0.25,
                          antenna_length=0.45, eye=0.15, segments=7, grey=0.5, log_length=float(np.log(220))),
    "millipede": BodyPlan((0.05, 0.1), (0.1, 0.1), (0.85, 0.1), leg_pairs=15, leg_length=0.1, leg_width=0.012,
                          antenna_length=0.1, eye=0.1, segments=16, log_length=float(np.log(420))),
}

_ORDER_TEMPLATE = {
    "Diptera": "fly",
    "Hymenoptera": "wasp",
    "Hemiptera": "bug",
    "Lepidoptera": "moth",
    "Coleoptera": "beetle",
    "Psocodea": "louse",
    "Thysanoptera": "thrips",
    "Trichoptera": "caddis",
    "Orthoptera": "cricket",
    "Blattodea": "beetle",
    "Neuroptera": "lacewing",
    "Ephemeroptera": "mayfly",
    "Plecoptera": "lacewing",
    "Odonata": "dragonfly",
    "Mecoptera": "fly",
    "Dermaptera": "beetle",
    "Mantodea": "cricket",
    "Strepsiptera": "fly",
    "Siphonaptera": "beetle",
    "Archaeognatha": "springtail",
    "Embioptera": "stick",
    "Megaloptera": "lacewing",
    "Zygentoma": "springtail",
    "Raphidioptera": "lacewing",
    "Phasmida": "stick",
    "Zoraptera": "louse",
    "Araneae": "spider",
    "Trombidiformes": "mite",
    "Sarcoptiformes": "mite",
    "Mesostigmata": "mite",
    "Opiliones": "harvestman",
    "Pseudoscorpiones": "spider",
    "Entomobryomorpha": "springtail",
    "Symphypleona": "globular",
    "Poduromorpha": "springtail",
    "Isopoda": "woodlouse",
    "Amphipoda": "woodlouse",
    "Polydesmida": "millipede",
    "Julida": "millipede",
    "Lithobiomorpha": "millipede",
    "Geophilomorpha": "millipede",
    "Diplostraca": "mite",
    "Podocopida": "mite",
    "Cyclopoida": "mite",
    "Acerentomata": "springtail",
}


@dataclass(frozen=True)
class Colouring:
    """Colours of one family (RGB 0..255) and proportion changes relative to its order's plan."""

    body: tuple[int, int, int]
    second: tuple[int, int, int]  # thorax / legs / wing scales
    wing_tint: tuple[int, int, int]
    scale: dict[str, float]  # multipliers of plan fields (abdomen width, leg and antenna length...)
    log_size: float  # offset of the family's mean log body length


@dataclass(frozen=True)
class Pattern:
    """A genus's pattern: kind (plain, bands, spots, stripe, twotone), colour and how many/what size."""

    kind: str
    colour: tuple[int, int, int]
    count: int
    size: float
    wing_spot: bool


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return int(r * 255), int(g * 255), int(b * 255)


class Appearance:
    """Traits of every taxon of one synthetic dataset (deterministic in ``seed``)."""

    def __init__(self, taxonomy: Taxonomy, seed: int) -> None:
        self.taxonomy = taxonomy
        self.seed = seed
        self.plans = [self._order_plan(i, name) for i, name in enumerate(taxonomy.order_names)]
        self.families = [self._family(i) for i in range(len(taxonomy.family_order))]
        # Per-family plan (order plan times family scales), used for geometry and drawing alike.
        self.family_plans = [
            self._scaled_plan(self.plans[taxonomy.family_order[f]], c.scale)
            for f, c in enumerate(self.families)
        ]
        extents = np.array([_extent(plan) for plan in self.family_plans]).reshape(-1, 4)
        self._family_extent = extents  # (half-length, half-width, centre offset, area factor)
        self._family_log_length = np.array(
            [
                self.plans[taxonomy.family_order[f]].log_length + c.log_size
                for f, c in enumerate(self.families)
            ]
        )
        genera = np.arange(len(taxonomy.genus_family))
        self._genus_log_size = 0.12 * hashing.normal(seed, _STREAM_GENUS, genera, 0)
        species = np.arange(taxonomy.n_species)
        self._species_log_size = 0.06 * hashing.normal(seed, _STREAM_SPECIES, species, 0)
        self._patterns: dict[int, Pattern] = {}

    # --- traits ---------------------------------------------------------------------------------------

    def _order_plan(self, index: int, name: str) -> BodyPlan:
        plan = _TEMPLATES[_ORDER_TEMPLATE.get(name, "fly")]
        rng = hashing.generator(self.seed, _STREAM_ORDER, index)
        # Orders sharing a template still differ a little (their own proportions and size).
        jitter = {k: float(rng.uniform(0.85, 1.15)) for k in ("leg_length", "antenna_length", "wing_length")}
        return replace(
            plan,
            leg_length=plan.leg_length * jitter["leg_length"],
            antenna_length=plan.antenna_length * jitter["antenna_length"],
            wing_length=plan.wing_length * jitter["wing_length"],
            log_length=plan.log_length + float(rng.normal(0, 0.1)),
        )

    def _family(self, family: int) -> Colouring:
        rng = hashing.generator(self.seed, _STREAM_FAMILY, family)
        plan = self.plans[self.taxonomy.family_order[family]]
        kind = rng.random()
        value = rng.uniform(0.45, 0.95)
        if kind < 0.6:  # browns, tans and yellows: most small insects
            hue, sat = rng.uniform(0.04, 0.16), rng.uniform(0.3, 0.75)
        elif kind < 0.85:  # near black / dark brown
            hue, sat, value = rng.uniform(0.0, 0.12), rng.uniform(0.2, 0.6), rng.uniform(0.12, 0.4)
        elif kind < 0.9:  # greens
            hue, sat = rng.uniform(0.2, 0.38), rng.uniform(0.25, 0.55)
        elif kind < 0.96:  # reds and oranges
            hue, sat = rng.uniform(-0.02, 0.06), rng.uniform(0.55, 0.9)
        else:  # metallic blue-green
            hue, sat = rng.uniform(0.45, 0.62), rng.uniform(0.4, 0.8)
        value = float(np.clip(value - 0.35 * plan.darkness, 0.08, 0.97))
        sat = float(sat * (1 - plan.grey))
        body = _hsv(hue, sat, value)
        second = _hsv(hue + rng.normal(0, 0.05), sat * rng.uniform(0.6, 1.2), value * rng.uniform(0.5, 1.15))
        wing_tint = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.35), rng.uniform(0.55, 0.9))
        scale = {
            "abdomen_width": float(rng.uniform(0.8, 1.25)),
            "abdomen_length": float(rng.uniform(0.85, 1.15)),
            "leg_length": float(rng.uniform(0.75, 1.3)),
            "antenna_length": float(rng.uniform(0.6, 1.6)),
            "wing_length": float(rng.uniform(0.88, 1.12)),
            "wing_width": float(rng.uniform(0.8, 1.25)),
            "wing_spread": float(rng.uniform(0.7, 1.3)),
        }
        return Colouring(body, second, wing_tint, scale, float(rng.normal(0, 0.3)))

    @staticmethod
    def _scaled_plan(plan: BodyPlan, scale: dict[str, float]) -> BodyPlan:
        head, thorax, abdomen = plan.head, plan.thorax, plan.abdomen
        abdomen = (abdomen[0] * scale["abdomen_length"], abdomen[1] * scale["abdomen_width"])
        total = head[0] + thorax[0] + plan.waist + abdomen[0]
        return replace(
            plan,
            head=(head[0] / total, head[1]),
            thorax=(thorax[0] / total, thorax[1]),
            abdomen=(abdomen[0] / total, abdomen[1]),
            waist=plan.waist / total,
            leg_length=plan.leg_length * scale["leg_length"],
            antenna_length=plan.antenna_length * scale["antenna_length"],
            wing_length=plan.wing_length * scale["wing_length"],
            wing_width=plan.wing_width * scale["wing_width"],
            wing_spread=plan.wing_spread * scale["wing_spread"],
        )

    def pattern(self, genus: int) -> Pattern:
        """The pattern every species of ``genus`` shares."""
        if genus not in self._patterns:
            self._patterns[genus] = self._make_pattern(genus)
        return self._patterns[genus]

    def _make_pattern(self, genus: int) -> Pattern:
        rng = hashing.generator(self.seed, _STREAM_GENUS, genus)
        family = self.families[self.taxonomy.genus_family[genus]]
        kind = str(
            rng.choice(["plain", "bands", "spots", "stripe", "twotone"], p=[0.2, 0.3, 0.25, 0.1, 0.15])
        )
        h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in family.body))
        if rng.random() < 0.6:  # darker markings
            colour = _hsv(h + rng.normal(0, 0.03), s * rng.uniform(0.8, 1.2), v * rng.uniform(0.15, 0.5))
        else:  # pale or contrasting markings
            colour = _hsv(h + rng.uniform(-0.15, 0.15), s * rng.uniform(0.3, 1.0), min(1.0, v * 1.6 + 0.25))
        return Pattern(
            kind, colour, int(rng.integers(2, 6)), float(rng.uniform(0.5, 1.0)), bool(rng.random() < 0.35)
        )

    def species_cue(self, species: int) -> tuple[float, float, float]:
        """(hue shift, brightness factor, pattern size factor) that set a species apart within its genus."""
        u = hashing.uniform(self.seed, _STREAM_SPECIES, np.array([species]), np.arange(1, 4))
        return float(0.03 * (u[0] - 0.5)), float(0.9 + 0.2 * u[1]), float(0.8 + 0.4 * u[2])

    # --- geometry -------------------------------------------------------------------------------------

    def frames(self, species: np.ndarray, record: np.ndarray) -> Frames:
        """Pose and framing of records (vectorised): body size, rotation and the crop around the specimen."""
        t = self.taxonomy
        family = t.species_family[species]
        genus = t.species_genus[species]
        u = [hashing.uniform(self.seed, _STREAM_POSE, record, k) for k in range(5)]
        log_length = (
            self._family_log_length[family]
            + self._genus_log_size[genus]
            + self._species_log_size[species]
            + 0.08 * hashing.normal(self.seed, _STREAM_POSE, record, 9)
        )
        length = np.exp(log_length)  # body length, original-photo pixels
        half_len, half_wid, centre, area = self._family_extent[family].T
        angle = 2 * np.pi * u[0]
        cos, sin = np.abs(np.cos(angle)), np.abs(np.sin(angle))
        pad = 1.08 + 0.2 * u[1]
        width = np.clip(2 * (half_len * cos + half_wid * sin) * length * pad, 24, ORIGINAL_SIZE[0])
        height = np.clip(2 * (half_len * sin + half_wid * cos) * length * pad, 24, ORIGINAL_SIZE[1])
        return Frames(
            length=length,
            angle=angle,
            centre=centre,
            crop_width=width,
            crop_height=height,
            crop_x=u[2] * (ORIGINAL_SIZE[0] - width),
            crop_y=u[3] * (ORIGINAL_SIZE[1] - height),
            organism_pixels=np.round(area * length**2),
            light=u[4],
        )

    def family_plan(self, family: int) -> BodyPlan:
        return self.family_plans[family]


@dataclass(frozen=True)
class Frames:
    """Per-record framing in original-photo pixels; all fields are arrays of one value per record."""

    length: np.ndarray  # body length
    angle: np.ndarray  # rotation of the body axis, radians
    centre: np.ndarray  # offset of the bounding box centre from the body centre, body lengths
    crop_width: np.ndarray
    crop_height: np.ndarray
    crop_x: np.ndarray  # left edge of the crop
    crop_y: np.ndarray  # top edge of the crop
    organism_pixels: np.ndarray  # pixels covered by the organism (image_measurement_value)
    light: np.ndarray  # 0..1, lighting of the photo

    @property
    def area_fraction(self) -> np.ndarray:
        """Share of the original photo covered by the crop."""
        return self.crop_width * self.crop_height / (ORIGINAL_SIZE[0] * ORIGINAL_SIZE[1])

    @property
    def scale_factor(self) -> np.ndarray:
        """Crop size over the 256 px version's size (shorter sides)."""
        return np.minimum(self.crop_width, self.crop_height) / SHORT_SIDE_256


def _extent(plan: BodyPlan) -> tuple[float, float, float, float]:
    """(half-length, half-width, centre offset along the axis, organism area) of a plan, in body lengths.

    The body runs from x = -0.5 (tail) to +0.5 (head); the box covers antennae, wings, legs and tails.
    """
    front = 0.5 + plan.antenna_length * 0.8
    back = -0.5 - plan.tails
    side = max(plan.thorax[1], plan.abdomen[1]) / 2
    legs = plan.leg_length * 0.75
    side = max(side, legs)
    if plan.wing_pairs:
        root_x = 0.5 - plan.head[0] - plan.thorax[0] * 0.4
        spread = plan.wing_spread
        tip_x = root_x - plan.wing_length * np.cos(spread)
        back = min(back, tip_x - plan.wing_width * 0.5 * np.sin(spread))
        side = max(side, plan.wing_length * np.sin(spread) + plan.wing_width * 0.5 * np.cos(spread))
    centre = (front + back) / 2
    body_area = np.pi / 4 * sum(part[0] * part[1] for part in (plan.head, plan.thorax, plan.abdomen))
    wing_area = (
        np.pi / 4 * plan.wing_length * plan.wing_width * 2 * plan.wing_pairs * (0.3 + 0.7 * plan.wing_alpha)
    )
    leg_area = plan.leg_pairs * 2 * plan.leg_length * plan.leg_width * 1.2
    return (front - back) / 2, side, float(centre), float(body_area + wing_area + leg_area)
