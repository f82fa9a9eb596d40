"""Tables as Markdown text (GitHub / MyST), for the README, the job summaries and the chapters' generated prose."""

from __future__ import annotations

import pandas as pd


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a GitHub / MyST Markdown table: its columns as the header, every cell as text (``|`` and ``$``
    escaped, so that neither splits a cell nor opens math; line breaks folded), the index left out."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("$", "\\$").replace("\n", " ")

    rows = [list(map(cell, frame.columns)), ["---"] * len(frame.columns)]
    rows += [[cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)
