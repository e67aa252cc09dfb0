"""Drawing synthetic specimen photos with PIL and numpy: a well-plate background, then the animal.

Shapes are polygons drawn straight at the output resolution; a slight blur (soft focus, which also hides the
jagged polygon edges), exposure, sensor noise and JPEG compression then make it look photographed.
"""

from __future__ import annotations

import colorsys
import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from bioscan5m.data.synthetic import hashing
from bioscan5m.data.synthetic.appearance import ORIGINAL_SIZE, SHORT_SIDE_256, Appearance, BodyPlan, Pattern

_STREAM_RENDER = 31
#: JPEG quality of the written images.
JPEG_QUALITY = 90
Colour = tuple[int, int, int]


def _shade(colour: Colour, factor: float, alpha: int = 255) -> tuple[int, int, int, int]:
    r, g, b = (min(255, max(0, int(c * factor))) for c in colour)
    return r, g, b, alpha


def _cue(colour: Colour, hue_shift: float, value: float) -> Colour:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in colour))
    r, g, b = colorsys.hsv_to_rgb((h + hue_shift) % 1.0, s, min(1.0, v * value))
    return int(r * 255), int(g * 255), int(b * 255)


class _Pen:
    """Draws shapes given in body coordinates (body length 1, head towards +x) onto a canvas."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, cy: float, scale: float, angle: float) -> None:
        self.draw, self.cx, self.cy, self.scale = draw, cx, cy, scale
        self.cos, self.sin = math.cos(angle), math.sin(angle)

    def points(self, xy: np.ndarray) -> list[tuple[float, float]]:
        x, y = xy[:, 0] * self.scale, xy[:, 1] * self.scale
        return list(
            zip(
                (self.cx + x * self.cos - y * self.sin).tolist(),
                (self.cy + x * self.sin + y * self.cos).tolist(),
            )
        )

    def ellipse(
        self, x: float, y: float, rx: float, ry: float, fill, outline=None, turn: float = 0.0, n: int = 28
    ):
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        ex, ey = rx * np.cos(t), ry * np.sin(t)
        c, s = math.cos(turn), math.sin(turn)
        xy = np.stack([x + ex * c - ey * s, y + ex * s + ey * c], axis=1)
        self.draw.polygon(self.points(xy), fill=fill, outline=outline)

    def line(self, xy: list[tuple[float, float]], fill, width: float) -> None:
        self.draw.line(
            self.points(np.asarray(xy, dtype=np.float64)),
            fill=fill,
            width=max(1, round(width * self.scale)),
            joint="curve",
        )


def _background(rng: np.random.Generator, width: int, height: int, light: float) -> Image.Image:
    """A well-plate background: pale blue-grey, a soft reflection and the faint rim of a well.

    Computed on a quarter-resolution grid (it is smooth) and enlarged.
    """
    w, h = max(2, width // 4), max(2, height // 4)
    base = np.array([199.0, 207.0, 217.0]) + rng.normal(0, 2.5, 3) + (light - 0.5) * 30
    yy, xx = np.ogrid[0:h, 0:w]
    size = max(w, h)
    gx, gy = rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h
    glow = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * (0.6 * size) ** 2))
    rx, ry = rng.uniform(-0.5, 1.5) * w, rng.uniform(-0.5, 1.5) * h
    radius = rng.uniform(0.5, 1.3) * size
    rim = np.abs(np.sqrt((xx - rx) ** 2 + (yy - ry) ** 2) - radius)
    ring = np.exp(-((rim / (0.012 * size + 0.6)) ** 2)) * rng.uniform(8, 22)
    halo = np.exp(-((rim / (0.06 * size + 1)) ** 2)) * rng.uniform(4, 12)
    shade = 28 * glow - ring + halo - 14
    pixels = np.clip(base[None, None, :] + shade[:, :, None], 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").resize((width, height), Image.Resampling.BILINEAR)


_NOISE_TILE: list[np.ndarray] = []


def _noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Gaussian sensor noise (std 1) for an image, cut at random from one cached tile (fast)."""
    if not _NOISE_TILE:
        _NOISE_TILE.append(np.random.default_rng(0).standard_normal((1280, 1280)).astype(np.float32))
    tile = _NOISE_TILE[0]
    if height > tile.shape[0] or width > tile.shape[1]:
        return rng.standard_normal((height, width)).astype(np.float32)
    y = int(rng.integers(0, tile.shape[0] - height + 1))
    x = int(rng.integers(0, tile.shape[1] - width + 1))
    return tile[y : y + height, x : x + width]


def _wing(
    pen: _Pen,
    plan: BodyPlan,
    root: tuple[float, float],
    side: int,
    spread: float,
    length: float,
    width: float,
    fill,
    vein,
    pattern: Pattern | None,
    pattern_scale: float,
) -> None:
    direction = math.pi - side * spread
    dx, dy = math.cos(direction), math.sin(direction)
    mid = (root[0] + dx * length / 2, root[1] * side + dy * length / 2)
    pen.ellipse(mid[0], mid[1], length / 2, width / 2, fill=fill, outline=vein, turn=direction)
    if plan.wing_kind == "fringe":
        for k in range(1, 8):
            px, py = root[0] + dx * length * k / 8, root[1] * side + dy * length * k / 8
            nx, ny = -dy * width * 1.6, dx * width * 1.6
            pen.line([(px - nx, py - ny), (px + nx, py + ny)], fill=vein, width=0.004)
        return
    if plan.wing_kind == "membrane":
        for offset in (-0.25, 0.1, 0.35):
            tip = (
                root[0] + dx * length * 0.85 - dy * width * offset,
                root[1] * side + dy * length * 0.85 + dx * width * offset,
            )
            pen.line([(root[0], root[1] * side), tip], fill=vein, width=0.006)
    if pattern is not None and pattern.wing_spot:
        spot = (
            root[0] + dx * length * 0.68 - dy * width * 0.28,
            root[1] * side + dy * length * 0.68 + dx * width * 0.28,
        )
        pen.ellipse(
            spot[0],
            spot[1],
            length * 0.07 * pattern_scale,
            width * 0.12 * pattern_scale,
            fill=_shade(pattern.colour, 1.0, 200),
            turn=direction,
        )
    if plan.wing_kind == "scaled" and pattern is not None and pattern.kind in ("spots", "bands"):
        for k in range(pattern.count):
            f = 0.3 + 0.55 * k / max(1, pattern.count - 1)
            c = (root[0] + dx * length * f, root[1] * side + dy * length * f)
            if pattern.kind == "spots":
                pen.ellipse(
                    c[0],
                    c[1],
                    width * 0.12 * pattern_scale,
                    width * 0.12 * pattern_scale,
                    fill=_shade(pattern.colour, 1.0),
                )
            else:
                pen.ellipse(
                    c[0],
                    c[1],
                    length * 0.03 * pattern_scale,
                    width * 0.45,
                    fill=_shade(pattern.colour, 1.0),
                    turn=direction,
                )


def _draw_specimen(
    pen: _Pen,
    plan: BodyPlan,
    body: Colour,
    second: Colour,
    wing_tint: Colour,
    pattern: Pattern,
    pattern_scale: float,
    rng: np.random.Generator,
) -> None:
    """The animal, drawn tail to head and bottom to top, in body coordinates."""
    head_x = 0.5 - plan.head[0] / 2
    thorax_x = 0.5 - plan.head[0] - plan.thorax[0] / 2
    abdomen_x = -0.5 + plan.abdomen[0] / 2
    dark = _shade(body, 0.45)
    outline = _shade(body, 0.7)
    wing_fill = (*wing_tint, int(255 * plan.wing_alpha))
    vein = _shade(wing_tint, 0.55, int(120 + 100 * plan.wing_alpha))
    spread = plan.wing_spread * rng.uniform(0.8, 1.25)
    root = (thorax_x + plan.thorax[0] * 0.1, plan.thorax[1] * 0.25)

    def wings() -> None:
        if plan.wing_kind == "elytra" or not plan.wing_pairs:
            return
        fill = (*second, int(255 * plan.wing_alpha)) if plan.wing_kind == "scaled" else wing_fill
        for pair in range(plan.wing_pairs - 1, -1, -1):  # hind wings first, under the fore wings
            factor = 1.0 if pair == 0 else 0.78
            r = (root[0] - 0.06 * pair, root[1])
            for side in (-1, 1):
                _wing(
                    pen,
                    plan,
                    r,
                    side,
                    spread * (1 + 0.15 * pair),
                    plan.wing_length * factor,
                    plan.wing_width * factor,
                    fill,
                    vein,
                    pattern if pair == 0 else None,
                    pattern_scale,
                )

    if plan.wings_below:
        wings()
    # Legs: femur out from the body side, tibia bending towards the tail.
    leg_span = (thorax_x - plan.thorax[0] * 0.35, thorax_x + plan.thorax[0] * 0.35)
    if plan.leg_pairs > 4:
        leg_span = (-0.45, 0.4)
    for k in range(plan.leg_pairs):
        f = k / max(1, plan.leg_pairs - 1)
        base_x = leg_span[1] - f * (leg_span[1] - leg_span[0])
        angle = math.radians(55 + 80 * f) + rng.normal(0, 0.15)
        for side in (-1, 1):
            femur = plan.leg_length * 0.45
            knee = (base_x + femur * math.cos(angle), side * (plan.thorax[1] * 0.3 + femur * math.sin(angle)))
            bend = angle + math.radians(35) + rng.normal(0, 0.15)
            foot = (
                knee[0] + plan.leg_length * 0.55 * math.cos(bend),
                knee[1] + side * plan.leg_length * 0.55 * math.sin(bend),
            )
            pen.line(
                [(base_x, side * plan.thorax[1] * 0.2), knee, foot],
                fill=_shade(second, 0.8),
                width=plan.leg_width,
            )
    if plan.tails:
        for side in (-1, 1):
            pen.line(
                [(-0.48, side * 0.01), (-0.5 - plan.tails, side * plan.tails * 0.3)], fill=dark, width=0.01
            )

    # Abdomen with its segments and the genus pattern.
    a_len, a_wid = plan.abdomen
    pen.ellipse(abdomen_x, 0, a_len / 2, a_wid / 2, fill=_shade(body, 1.0), outline=outline)
    for k in range(1, plan.segments):
        x = -0.5 + a_len * k / plan.segments
        half = a_wid / 2 * math.sqrt(max(0.0, 1 - ((x - abdomen_x) / (a_len / 2)) ** 2))
        pen.line([(x, -half * 0.95), (x, half * 0.95)], fill=_shade(body, 0.8, 150), width=0.006)
    colour = _shade(pattern.colour, 1.0)
    if pattern.kind == "bands":
        for k in range(pattern.count):
            x = abdomen_x - a_len * 0.35 + a_len * 0.7 * k / max(1, pattern.count - 1)
            half = a_wid / 2 * math.sqrt(max(0.0, 1 - ((x - abdomen_x) / (a_len / 2)) ** 2))
            pen.ellipse(x, 0, a_len * 0.045 * pattern.size * pattern_scale, half * 0.95, fill=colour)
    elif pattern.kind == "spots":
        for k in range(pattern.count):
            x = abdomen_x - a_len * 0.3 + a_len * 0.6 * k / max(1, pattern.count - 1)
            r = a_wid * 0.11 * pattern.size * pattern_scale
            for side in (-1, 1):
                pen.ellipse(x, side * a_wid * 0.2, r, r, fill=colour)
    elif pattern.kind == "stripe":
        pen.ellipse(abdomen_x, 0, a_len * 0.45, a_wid * 0.09 * pattern_scale, fill=colour)
    if plan.waist:
        pen.ellipse(
            0.5 - plan.head[0] - plan.thorax[0] - plan.waist / 2,
            0,
            plan.waist / 2 + 0.01,
            plan.thorax[1] * 0.15,
            fill=dark,
        )

    thorax_colour = pattern.colour if pattern.kind == "twotone" else second
    pen.ellipse(
        thorax_x,
        0,
        plan.thorax[0] / 2,
        plan.thorax[1] / 2,
        fill=_shade(thorax_colour, 1.0),
        outline=_shade(thorax_colour, 0.7),
    )
    if pattern.kind == "stripe":
        pen.ellipse(thorax_x, 0, plan.thorax[0] * 0.45, plan.thorax[1] * 0.08 * pattern_scale, fill=colour)

    if plan.wing_kind == "elytra" and plan.wing_pairs:
        e_len = min(plan.wing_length, a_len + plan.thorax[0] * 0.3)
        e_x = 0.5 - plan.head[0] - plan.thorax[0] * 0.7 - e_len / 2
        e_wid = max(plan.abdomen[1], plan.thorax[1]) * 0.52
        for side in (-1, 1):
            pen.ellipse(
                e_x,
                side * e_wid / 2,
                e_len / 2,
                e_wid / 2,
                fill=_shade(second, 1.0, int(255 * plan.wing_alpha)),
                outline=_shade(second, 0.6),
            )
            if pattern.kind == "spots":
                for k in range(pattern.count):
                    x = e_x - e_len * 0.3 + e_len * 0.6 * k / max(1, pattern.count - 1)
                    r = e_wid * 0.18 * pattern.size * pattern_scale
                    pen.ellipse(x, side * e_wid / 2, r, r, fill=colour)
            elif pattern.kind == "bands":
                pen.ellipse(e_x, side * e_wid / 2, e_len * 0.06 * pattern_scale, e_wid * 0.48, fill=colour)
        pen.ellipse(e_x + e_len * 0.1, -e_wid * 0.4, e_len * 0.25, e_wid * 0.12, fill=(255, 255, 255, 60))

    pen.ellipse(head_x, 0, plan.head[0] / 2, plan.head[1] / 2, fill=_shade(second, 0.9), outline=outline)
    if plan.eye:
        eye = plan.head[1] * plan.eye * 0.32
        for side in (-1, 1):
            pen.ellipse(
                head_x + plan.head[0] * 0.1,
                side * (plan.head[1] / 2 - eye * 0.7),
                eye,
                eye,
                fill=(60, 25, 20, 255) if plan.eye > 0.7 else (25, 20, 18, 255),
            )
    if not plan.wings_below:
        wings()
    if plan.antenna_length:
        for side in (-1, 1):
            base = (0.5 - plan.head[0] * 0.15, side * plan.head[1] * 0.2)
            length = plan.antenna_length
            if plan.antenna_elbow:
                elbow = (base[0] + length * 0.35, base[1] + side * length * 0.05)
                tip = (
                    elbow[0] + length * 0.65 * math.cos(0.9),
                    elbow[1] + side * length * 0.65 * math.sin(0.9),
                )
                points = [base, elbow, tip]
            else:
                a = 0.45 + rng.normal(0, 0.1)
                mid = (
                    base[0] + length * 0.5 * math.cos(a * 0.6),
                    base[1] + side * length * 0.5 * math.sin(a * 0.6),
                )
                tip = (
                    mid[0] + length * 0.5 * math.cos(a * 1.4),
                    mid[1] + side * length * 0.5 * math.sin(a * 1.4),
                )
                points = [base, mid, tip]
            pen.line(points, fill=_shade(second, 0.7), width=max(0.008, plan.leg_width * 0.6))
    # A soft highlight: the light of the microscope on a rounded body.
    pen.ellipse(
        thorax_x + plan.thorax[0] * 0.1,
        -plan.thorax[1] * 0.15,
        plan.thorax[0] * 0.2,
        plan.thorax[1] * 0.12,
        fill=(255, 255, 255, 45),
    )


def canvas_size(width: float, height: float, package: str) -> tuple[int, int]:
    """Output image size (pixels) for a crop of ``width`` x ``height`` original pixels in ``package``."""
    if package == "cropped_256":
        scale = min(width, height) / SHORT_SIDE_256
        return max(SHORT_SIDE_256, round(width / scale)), max(SHORT_SIDE_256, round(height / scale))
    if package == "cropped":
        return max(1, round(width)), max(1, round(height))
    if package == "original_256":
        return round(ORIGINAL_SIZE[0] * SHORT_SIDE_256 / ORIGINAL_SIZE[1]), SHORT_SIDE_256
    return ORIGINAL_SIZE


def render_specimen(
    appearance: Appearance, species: int, record: int, package: str = "cropped_256"
) -> Image.Image:
    """The photo of record ``record`` (a specimen of ``species``) as it appears in image ``package``."""
    frame = appearance.frames(np.array([species]), np.array([record]))
    length, angle, centre = float(frame.length[0]), float(frame.angle[0]), float(frame.centre[0])
    crop_w, crop_h = float(frame.crop_width[0]), float(frame.crop_height[0])
    crop_x, crop_y = float(frame.crop_x[0]), float(frame.crop_y[0])
    width, height = canvas_size(crop_w, crop_h, package)
    if package.startswith("cropped"):
        pixels_per_original = width / crop_w
        box_cx, box_cy = width / 2, height / 2
    else:
        pixels_per_original = width / ORIGINAL_SIZE[0]
        box_cx, box_cy = (
            (crop_x + crop_w / 2) * pixels_per_original,
            (crop_y + crop_h / 2) * pixels_per_original,
        )

    rng = hashing.generator(appearance.seed, _STREAM_RENDER, record)
    light = float(frame.light[0])
    canvas = _background(rng, width, height, light)

    taxonomy = appearance.taxonomy
    genus = int(taxonomy.species_genus[species])
    family = int(taxonomy.genus_family[genus])
    plan = appearance.family_plan(family)
    colouring = appearance.families[family]
    pattern = appearance.pattern(genus)
    hue, value, spot = appearance.species_cue(species)
    # Individuals vary too (age, preservation, how the light falls), blurring the species cues.
    hue += rng.normal(0, 0.008)
    value *= rng.uniform(0.88, 1.12)
    spot *= rng.uniform(0.85, 1.15)
    body = _cue(colouring.body, hue, value * rng.uniform(0.95, 1.05))
    second = _cue(colouring.second, hue, value * rng.uniform(0.95, 1.05))
    scale = length * pixels_per_original
    # The crop box is centred on the animal's bounding box, which sits ``centre`` body lengths ahead.
    cx = box_cx - centre * scale * math.cos(angle)
    cy = box_cy - centre * scale * math.sin(angle)
    pen = _Pen(ImageDraw.Draw(canvas, "RGBA"), cx, cy, scale, angle)
    _draw_specimen(pen, plan, body, second, colouring.wing_tint, pattern, spot, rng)

    # Photographic finish: soft focus, exposure and sensor noise.
    canvas = canvas.filter(ImageFilter.BoxBlur(rng.uniform(0.35, 0.8)))
    pixels = np.asarray(canvas, dtype=np.float32)
    pixels = pixels * (0.92 + 0.16 * light) + _noise(rng, height, width)[:, :, None] * rng.uniform(1.5, 4.0)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def encode_jpeg(image: Image.Image) -> bytes:
    """JPEG bytes of ``image`` at :data:`JPEG_QUALITY`."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
