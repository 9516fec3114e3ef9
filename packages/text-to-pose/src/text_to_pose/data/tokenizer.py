"""HamNoSys tokeniser with the ids of upstream transcription's ``HamNoSysTokenizer``.

Upstream (sign-language-processing/transcription, ``_shared/tokenizers``) takes every code point
of the best cmap of ``HamNoSysUnicode.ttf`` in ascending order: 210 glyphs, the 9 ASCII /
punctuation ones (space ``! , . ? { | }`` and NBSP) and 201 in the Private Use Area
U+E000-U+E0F1. Ids 0-3 are [UNK], [PAD], [BOS] (upstream's [CLS]) and [SEP]; glyph ``i`` has
id ``4 + i`` (214 ids), so weights trained upstream index the same embedding rows. The code
points are listed below (the font itself is not needed); glyph names come from the ``hamnosys``
package's table, whose two alternative code points (U+00EE, U+00EF) map to their glyph's id.

A text is ``[BOS] + glyphs`` without EOS, so the empty text encodes to ``[BOS]``, the
unconditional input of classifier-free guidance. Batches pad with [PAD] (upstream padded with
0 = [UNK]; only the masked positions differ).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files

import torch

UNK, PAD, BOS, SEP = 0, 1, 2, 3
FIRST_GLYPH_ID = 4
FONT_CODE_POINTS: tuple[int, ...] = (
    0x20, 0x21, 0x2C, 0x2E, 0x3F, 0x7B, 0x7C, 0x7D, 0xA0,
    *(
        c
        for start, end in (
            (0xE000, 0xE00E), (0xE010, 0xE014), (0xE020, 0xE031), (0xE038, 0xE054),
            (0xE058, 0xE05B), (0xE05F, 0xE06A), (0xE070, 0xE07A), (0xE07C, 0xE0AA),
            (0xE0AD, 0xE0BE), (0xE0C0, 0xE0CC), (0xE0D0, 0xE0D6), (0xE0D8, 0xE0DD),
            (0xE0E0, 0xE0ED), (0xE0F0, 0xE0F1),
        )
        for c in range(start, end + 1)
    ),
)  # fmt: skip
_LINE = re.compile(r"^\s*(\w+)\s*,\s*([0-9A-Fa-f]{4})(?:\s*\(Also\s+([0-9A-Fa-f]{4})\))?")


@lru_cache(maxsize=1)
def glyph_table() -> dict[str, str]:
    """``{glyph name: character}`` from ``hamnosys/data/conversion_dict.txt`` (the HamNoSys 4
    Unicode font table). Alternative code points (``(Also 00EE)``) map to the same name under
    ``<name>#alt``."""
    table: dict[str, str] = {}
    text = files("hamnosys.data").joinpath("conversion_dict.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        name, code, alias = match.groups()
        table[name] = chr(int(code, 16))
        if alias:
            table[f"{name}#alt"] = chr(int(alias, 16))
    if len(table) < 200:
        raise RuntimeError(
            f"hamnosys glyph table has only {len(table)} entries; reinstall hamnosys"
        )
    return table


class HamNoSysTokenizer:
    """Character-level tokeniser over the 210 glyphs of the HamNoSys Unicode font."""

    def __init__(self) -> None:
        self.char_to_id = {chr(c): FIRST_GLYPH_ID + i for i, c in enumerate(FONT_CODE_POINTS)}
        self.id_to_char = {i: c for c, i in self.char_to_id.items()}
        self.name_to_char: dict[str, str] = {}
        self.char_to_name: dict[str, str] = {}
        for name, char in glyph_table().items():
            primary = name.split("#", 1)[0]
            if primary != name:  # alternative code point of a glyph listed before
                self.char_to_id[char] = self.char_to_id[self.name_to_char[primary]]
            else:
                self.name_to_char[name] = char
            self.char_to_name[char] = primary
        self.vocab_size = FIRST_GLYPH_ID + len(FONT_CODE_POINTS)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:
        """``[BOS, glyph ids...]``; an unknown character raises ``ValueError`` naming it."""
        ids = [BOS]
        for position, char in enumerate(text):
            token = self.char_to_id.get(char)
            if token is None:
                raise ValueError(
                    f"unknown HamNoSys glyph {char!r} (U+{ord(char):04X}) at position {position} "
                    f"of {text!r}; text must consist of glyphs of the hamnosys package's table "
                    "(HamNoSys 4 Unicode, U+E000-U+E0F1 plus space ! , . ? { | } and NBSP)"
                )
            ids.append(token)
        return ids

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """Glyph ids back to text; the special ids are skipped."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return "".join(self.id_to_char[i] for i in ids if i >= FIRST_GLYPH_ID)

    def from_names(self, names: list[str]) -> str:
        """Text from glyph names such as ``["hamflathand", "hamextfingeru"]``."""
        unknown = [n for n in names if n not in self.name_to_char]
        if unknown:
            raise ValueError(f"unknown HamNoSys glyph names {unknown}")
        return "".join(self.name_to_char[n] for n in names)

    def to_names(self, text: str) -> list[str]:
        """Glyph names of ``text``; the unnamed no-break space is ``"nbsp"``."""
        self.encode(text)  # validates every character
        return [self.char_to_name.get(c, "nbsp") for c in text]

    def batch(
        self, texts: list[str], max_len: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``ids [B, L]`` (LongTensor) and ``valid [B, L]`` (bool)."""
        encoded = [self.encode(t) for t in texts]
        longest = max(len(e) for e in encoded)
        if max_len is not None and longest > max_len:
            raise ValueError(
                f"a HamNoSys text has {longest - 1} glyphs but model.max_text_len={max_len} "
                f"allows at most {max_len - 1}; raise model.max_text_len"
            )
        ids = torch.full((len(texts), longest), PAD, dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = torch.tensor(e)
        return ids, ids != PAD
