"""The HamNoSys subset the procedural signer performs: composing random signs and parsing them.

A sign is written in the usual HamNoSys order (Hanke 2004, "HamNoSys: representing sign
language data in language resources and language technology contexts"):

    [hamsymmlr] handshape [hamthumboutmod] extended-finger-direction palm-orientation location
    movement [hamsmallmod|hamlargemod] [hamfast|hamslow] [hamrepeatfromstart|...several]

:func:`parse_sign` turns such a string into a :class:`SignSpec`, which is all the procedural
signer (:mod:`text_to_pose.data.signer`) reads, so the text really drives the motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from text_to_pose.data.tokenizer import HamNoSysTokenizer

# Signer-centred axes: x = the signer's left, y = up, z = forward (away from the body).
AXES = {
    "u": (0.0, 1.0, 0.0),
    "d": (0.0, -1.0, 0.0),
    "l": (1.0, 0.0, 0.0),
    "r": (-1.0, 0.0, 0.0),
    "o": (0.0, 0.0, 1.0),
    "i": (0.0, 0.0, -1.0),
}

HANDSHAPES = (
    "hamfist",
    "hamflathand",
    "hamfinger2",
    "hamfinger23",
    "hamfinger23spread",
    "hamfinger2345",
    "hampinchall",
    "hamceeall",
)
FINGER_DIRECTIONS = ("u", "ur", "ul", "l", "r", "o", "uo", "ol", "or", "do")
PALM_DIRECTIONS = ("u", "ur", "r", "dr", "d", "dl", "l", "ul")
LOCATIONS = (
    "hamforehead",
    "hamnose",
    "hamchin",
    "hamshoulders",
    "hamchest",
    "hamstomach",
    "hamneutralspace",
)
STRAIGHT_MOVES = ("u", "d", "l", "r", "o", "i", "ur", "ul", "dr", "dl", "uo", "do")
CIRCLE_AXES = ("o", "i", "u", "d", "l", "r")
OTHER_MOVES = ("hamnomotion", "hamfingerplay", "hamtwisting")
SIZES = {"hamsmallmod": 0.5, "hamlargemod": 1.6}
SPEEDS = {"hamfast": 0.6, "hamslow": 1.6}
REPEATS = {"hamrepeatfromstart": 2, "hamrepeatfromstartseveral": 3}


def direction(code: str) -> np.ndarray:
    """Unit vector of a HamNoSys direction code such as ``"ur"`` (up + signer's right)."""
    vector = np.sum([AXES[c] for c in code], axis=0)
    return vector / np.linalg.norm(vector)


@dataclass(frozen=True)
class SignSpec:
    """What the signer does, read from the glyphs."""

    handshape: str
    finger_direction: str
    palm_direction: str
    location: str
    movement: str  # "move", "circle", "nomotion", "fingerplay" or "twisting"
    movement_axis: str | None = None  # direction code of move/circle
    symmetric: bool = False
    thumb_out: bool = False
    size: float = 1.0
    duration: float = 1.0
    repeats: int = 1


def palm_is_valid(finger: str, palm: str) -> bool:
    """A palm orientation must be (nearly) perpendicular to the extended-finger direction."""
    return abs(float(direction(finger) @ direction(palm))) < 0.75


def random_sign_names(rng: np.random.Generator) -> list[str]:
    """Glyph names of a random sign of the subset (module docstring)."""
    names = ["hamsymmlr"] if rng.random() < 0.3 else []
    shape = str(rng.choice(HANDSHAPES))
    names.append(shape)
    if shape in ("hamflathand", "hamfinger2", "hamfinger23") and rng.random() < 0.25:
        names.append("hamthumboutmod")
    finger = str(rng.choice(FINGER_DIRECTIONS))
    palm = str(rng.choice([p for p in PALM_DIRECTIONS if palm_is_valid(finger, p)]))
    names += [f"hamextfinger{finger}", f"hampalm{palm}", str(rng.choice(LOCATIONS))]
    kind = rng.choice(["move", "circle", "other"], p=[0.5, 0.3, 0.2])
    if kind == "move":
        names.append(f"hammove{rng.choice(STRAIGHT_MOVES)}")
    elif kind == "circle":
        names.append(f"hamcircle{rng.choice(CIRCLE_AXES)}")
    else:
        names.append(str(rng.choice(OTHER_MOVES)))
    for table, p in ((SIZES, 0.3), (SPEEDS, 0.3), (REPEATS, 0.35)):
        if rng.random() < p:
            names.append(str(rng.choice(list(table))))
    return names


def random_sign(rng: np.random.Generator, tokenizer: HamNoSysTokenizer) -> str:
    return tokenizer.from_names(random_sign_names(rng))


def parse_sign(text: str, tokenizer: HamNoSysTokenizer) -> SignSpec:
    """Read a HamNoSys string of the subset into a :class:`SignSpec` (``ValueError`` otherwise)."""
    names = list(tokenizer.to_names(text))
    original = list(names)

    def fail(why: str) -> ValueError:
        return ValueError(f"HamNoSys {text!r} ({' '.join(original)}): {why}")

    def take(prefix: str, choices) -> str:
        if not names or not names[0].startswith(prefix) or names[0][len(prefix) :] not in choices:
            got = names[0] if names else "the end of the text"
            raise fail(f"expected {prefix}<{'|'.join(choices)}>, got {got}")
        return names.pop(0)[len(prefix) :]

    symmetric = bool(names) and names[0] == "hamsymmlr"
    if symmetric:
        names.pop(0)
    if not names or names[0] not in HANDSHAPES:
        raise fail(f"expected a handshape of {HANDSHAPES}, got {names[0] if names else 'nothing'}")
    shape = names.pop(0)
    thumb_out = bool(names) and names[0] == "hamthumboutmod"
    if thumb_out:
        names.pop(0)
    finger = take("hamextfinger", FINGER_DIRECTIONS)
    palm = take("hampalm", PALM_DIRECTIONS)
    if not palm_is_valid(finger, palm):
        raise fail(f"palm {palm} is not perpendicular to extended fingers {finger}")
    if not names or names[0] not in LOCATIONS:
        raise fail(f"expected a location of {LOCATIONS}")
    location = names.pop(0)
    if names and names[0].startswith("hammove"):
        movement, axis = "move", take("hammove", STRAIGHT_MOVES)
    elif names and names[0].startswith("hamcircle"):
        movement, axis = "circle", take("hamcircle", CIRCLE_AXES)
    elif names and names[0] in OTHER_MOVES:
        movement, axis = names.pop(0)[3:], None
    else:
        raise fail("expected a movement (hammove*, hamcircle*, hamnomotion, hamfingerplay, ...)")
    size = SIZES[names.pop(0)] if names and names[0] in SIZES else 1.0
    duration = SPEEDS[names.pop(0)] if names and names[0] in SPEEDS else 1.0
    repeats = REPEATS[names.pop(0)] if names and names[0] in REPEATS else 1
    if names:
        raise fail(f"glyphs {names} are not part of the procedural signer's subset")
    return SignSpec(shape, finger, palm, location, movement, axis, symmetric, thumb_out, size,
                    duration, repeats)  # fmt: skip
