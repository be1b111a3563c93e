"""Common topics for topic-guided generation (Section 3.1, Appendix A).

The paper's list comes from Wikipedia's `category` table: titles of fewer than three words with
more than 10 sub-categories and more than 50 pages. `from_category_dump` applies that filter to
the SQL dump (enwiki-*-category.sql[.gz]); `from_wiki_topics` is the offline substitute. The config
group `topics` names one of them (or any function returning a list of topics) with `_target_`.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from lamini_lm import assets, targets
from lamini_lm.errors import UserError

# one row of `INSERT INTO `category` VALUES (id,'title',pages,subcats,files),(...);`
_ROW = re.compile(r"\((\d+),'((?:[^'\\]|\\.)*)',(-?\d+),(-?\d+),(-?\d+)\)")
_UNESCAPE = re.compile(r"\\(.)")


def parse_category_dump(dump: str | Path):
    """Yield (title, pages, subcats, files) from a MediaWiki category table dump."""
    dump = Path(dump)
    if not dump.exists():
        raise UserError(f"topics.dump {dump} does not exist (download enwiki-latest-category.sql.gz)")
    opener = gzip.open if dump.suffix == ".gz" else open
    with opener(dump, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("INSERT INTO"):
                continue
            for m in _ROW.finditer(line):
                title = _UNESCAPE.sub(r"\1", m.group(2)).replace("_", " ")
                yield title, int(m.group(3)), int(m.group(4)), int(m.group(5))


def from_category_dump(dump: str | Path, max_words: int = 2, min_subcats: int = 11, min_pages: int = 51) -> list[str]:
    # reconstruction: MediaWiki's cat_pages counts sub-categories and files too; "pages" in the
    # paper means articles, so we subtract them.
    return sorted(
        title
        for title, pages, subcats, files in parse_category_dump(dump)
        if len(title.split()) <= max_words and subcats >= min_subcats and pages - subcats - files >= min_pages
    )


def from_wiki_topics(max_words: int = 2) -> list[str]:
    titles = json.loads((assets.path("wiki_topics") / "titles_en-us.json").read_text(encoding="utf-8"))
    return sorted(t for t in titles if len(t.split()) <= max_words and not t.isdigit())


def load(tcfg: dict) -> list[str]:
    """The topic list of config group `topics`: its `_target_` called with its settings."""
    topics = targets.build(tcfg, "topics")
    if not topics:
        raise UserError(f"the topic list ({tcfg['_target_']}) is empty after filtering: loosen topics.* thresholds")
    return topics
