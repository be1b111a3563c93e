"""The Rate-A..D scale of Table 7 (Wang et al., 2022's protocol), one declaration for the human ratings of
the data (Figure 4) and of the students' responses (Figure 6, and the LLM judge)."""

from __future__ import annotations

LEVELS = ("A", "B", "C", "D")
# green (A) to red (D) in every figure
COLOURS = {"A": "#1a9850", "B": "#a6d96a", "C": "#fdae61", "D": "#d73027"}
# Table 7, shown at the top of every rater's guide and in the judge's prompt
RUBRIC = """Rate every response A, B, C or D (Table 7 of the LaMini-LM paper; Wang et al. 2022's protocol):
A: valid, acceptable and satisfying response; accurate in facts, comparable to human standards
   (it may meet the criteria without being in the expected format).
B: acceptable, with minor errors that can be improved (out-of-context content, minimal factual
   errors, partially responding to the instruction, ...).
C: relevant and responds to the instruction, but has significant errors in the content.
D: invalid and unacceptable response.
Score all responses to one instruction against the same standard. You do not know which model
wrote which response; the order of responses is random."""


def parse(cell: str | None) -> str:
    """A rating as raters type it ('b', ' Rate-B ') -> 'B'; blank -> ''. Anything else raises ValueError."""
    value = (cell or "").strip().upper().removeprefix("RATE-")
    if value and value not in LEVELS:
        raise ValueError(f"rating {cell!r} is not one of {', '.join(LEVELS)}")
    return value
