"""Markdown and LaTeX (booktabs) rendering of a table whose cells are already text: Tables 1-2 of the
data analysis and Tables 4, 9-13 of the evaluation report are written by these two functions."""

from __future__ import annotations


def markdown(title: str, header: list[str], rows: list[list[str]]) -> str:
    """``title`` is written as given (a heading or bold line), then the pipe table."""
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def latex(caption: str, header: list[str], rows: list[list[str]], rule_before: set[int] = frozenset()) -> str:
    """A ``table`` float: first column left-aligned, the others right; a \\midrule before each row index in
    ``rule_before`` (e.g. the Average row). Cells are LaTeX already (the caller escapes them)."""
    out = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
           " & ".join(header) + r" \\", r"\midrule"]
    for i, row in enumerate(rows):
        if i in rule_before:
            out.append(r"\midrule")
        out.append(" & ".join(row) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\caption{" + caption + "}", r"\end{table}"]
    return "\n".join(out) + "\n"
