"""The paper's names for the seven subsets of D_ALL, in Table 1's row order.

The released dataset names a subset by its ``instruction_source`` value (lamini_lm.data.records.SOURCES);
the tables and figures use the paper's names: D̂_SI, D̂_t,SI, D̂_P3, D̂_FLAN, D̂_A, D_P3, D_FLAN and D_ALL.
A hat marks model-generated text (the paper's footnote 3 also writes Y_P3 and Y_FLAN without one).
"""

from __future__ import annotations

from dataclasses import dataclass

from lamini_lm.data.records import SOURCES
from lamini_lm.errors import UserError

ALL = "all"  # the key of the D_ALL row


@dataclass(frozen=True)
class Subset:
    source: str  # the released dataset's instruction_source value ("all" for D_ALL)
    key: str  # the paper's subscript
    hat: bool

    def name(self, letter: str = "D") -> str:
        """Plain-text name, e.g. D̂_t,SI or X_P3 (U+0302 puts the hat on the letter)."""
        return f"{letter}{chr(0x302) if self.hat else ''}_{self.key}"

    def latex(self, letter: str = "D") -> str:
        sub = self.key.replace("t,", "t,\\mathrm{") + "}" if self.key.startswith("t,") else f"\\mathrm{{{self.key}}}"
        base = f"\\widehat{{{letter}}}" if self.hat else letter
        return f"${base}_{{{sub}}}$"


# Table 1's row order.
SUBSETS: dict[str, Subset] = {
    s.source: s
    for s in [
        Subset("self_instruct_without_topic", "SI", True),
        Subset("self_instruct_with_topic", "t,SI", True),
        Subset("generated_p3", "P3", True),
        Subset("generated_flan", "FLAN", True),
        Subset("alpaca", "A", True),
        Subset("original_p3", "P3", False),
        Subset("original_flan", "FLAN", False),
    ]
}
D_ALL = Subset(ALL, "ALL", False)
assert set(SUBSETS) == set(SOURCES), "subset names out of sync with lamini_lm.data.records.SOURCES"
CODES = {s: i for i, s in enumerate(SUBSETS)}  # dense integer code per source, for numpy bincounts


def ordered(sources) -> list[str]:
    """The given sources in Table 1's order."""
    return [s for s in SUBSETS if s in set(sources)]


def resolve(names, where: str) -> list[str]:
    """Check user-given subset names: released names, or paper names (D̂_SI, also typed D^_SI; D_P3)."""
    if isinstance(names, str):  # analysis.subsets=alpaca
        names = [names]
    aliases = {f.lower(): s.source for s in SUBSETS.values() for f in (s.name(), s.name().replace(chr(0x302), "^"))}
    out = []
    for n in names:
        src = n if n in SUBSETS else aliases.get(str(n).lower())
        if src is None:
            raise UserError(f"{where}: unknown subset '{n}'; use one of {', '.join(SUBSETS)}")
        out.append(src)
    return out
