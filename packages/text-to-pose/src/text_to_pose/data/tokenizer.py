"""HamNoSys tokeniser: one token per glyph of the ``hamnosys`` package's glyph table.

Ids: 0 = padding, 1 = BOS, glyphs from 2 in the table's order (the Ham2Pose layout; reference
text-to-pose.md, "HamNoSys tokenisation"). A text is ``[BOS] + glyphs`` without EOS, so the
empty text encodes to ``[BOS]``, the unconditional input of classifier-free guidance.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files

import torch

PAD, BOS = 0, 1
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
    """Character-level tokeniser over the HamNoSys glyph table."""

    def __init__(self) -> None:
        self.char_to_id: dict[str, int] = {}
        self.id_to_char: dict[int, str] = {}
        self.name_to_char: dict[str, str] = {}
        self.char_to_name: dict[str, str] = {}
        next_id = 2
        for name, char in glyph_table().items():
            primary = name.split("#", 1)[0]
            if primary != name:  # alternative code point of a glyph listed before
                self.char_to_id[char] = self.char_to_id[self.name_to_char[primary]]
                self.char_to_name[char] = primary
                continue
            self.name_to_char[name] = char
            self.char_to_name[char] = name
            self.char_to_id[char] = next_id
            self.id_to_char[next_id] = char
            next_id += 1
        self.vocab_size = next_id

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
                    "(HamNoSys 4 Unicode, U+E000-U+E0F1 plus space ! , . ? { | })"
                )
            ids.append(token)
        return ids

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """Glyph ids back to text; BOS and padding are skipped."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return "".join(self.id_to_char[i] for i in ids if i not in (PAD, BOS))

    def from_names(self, names: list[str]) -> str:
        """Text from glyph names such as ``["hamflathand", "hamextfingeru"]``."""
        unknown = [n for n in names if n not in self.name_to_char]
        if unknown:
            raise ValueError(f"unknown HamNoSys glyph names {unknown}")
        return "".join(self.name_to_char[n] for n in names)

    def to_names(self, text: str) -> list[str]:
        self.encode(text)  # validates every character
        return [self.char_to_name[c] for c in text]

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
