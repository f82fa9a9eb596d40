"""What every chapter of the book does first, and the formats every chapter shares.

* :func:`chapter_setup` replaces the preamble each chapter used to copy: it receives the chapter's parameters (one
  place, so that they can be checked before anything trains), resolves the profile, opens the run store with an
  explicit corpus cache (``data_cache``; no ``os.environ`` side channel) and fixes the device and the date.
* :func:`provenance` is the one line that says what produced a figure or a table, in ONE format::

      profile <name> · <data> · runs <label>: <hash8>, <hash8>; <label>: <hash8> · <YYYY-MM-DD>

  ``<data>`` is the data description of the runs (``DataSpec.describe()``), the hashes are the first
  :data:`SHORT_HASH` hex digits of the runs' config hashes (the run directories' names end with the full hash),
  grouped by what the chapter calls the runs (pre-training, detector, ...), and the date is the day the chapter was
  executed. :func:`run_hashes` reads the groups from a result dict of :mod:`detpretrain.experiments`.
* :func:`table` shows a DataFrame with fixed number formats and readable column spacing, in HTML (the rendered
  book) and in plain text (terminals, nbval) alike.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

#: hex digits of a config hash shown in provenance lines
SHORT_HASH = 8
#: the separator of the fields of a provenance line
SEP = " · "


def quiet(*_args) -> None:
    """A ``log`` callback that prints nothing (chapters pass it to the experiment functions)."""


@dataclasses.dataclass(frozen=True)
class Chapter:
    """A chapter's resolved setup (returned by :func:`chapter_setup`).

    Attributes:
        name: the chapter (``"detection"``).
        profile: the :class:`~detpretrain.profiles.Profile`.
        store: the :class:`~detpretrain.runs.RunStore`; ``store.data_cache`` is :attr:`data_cache`.
        data_cache: the folder of the generated synthetic corpora.
        device: the ``device`` parameter as given (``"auto"``, ``"cpu"``, ``"cuda"``); :attr:`torch_device` resolves it.
        params: every parameter the chapter passed, by name (those above included).
        date: the execution date (ISO ``YYYY-MM-DD``) that :meth:`provenance` prints.
    """

    name: str
    profile: object
    store: object
    data_cache: Path
    device: str
    params: dict
    date: str

    @property
    def seeds(self) -> tuple[int, ...]:
        """The ``seeds`` parameter as a tuple, or the profile's seeds when it is None (or not a parameter)."""
        seeds = self.params.get("seeds")
        return tuple(seeds) if seeds is not None else tuple(self.profile.seeds)

    @property
    def replicates(self) -> int:
        """The ``replicates`` parameter, or the profile's pre-training replicates when it is None (or not a
        parameter)."""
        value = self.params.get("replicates")
        return int(value) if value is not None else int(self.profile.pretrain_replicates)

    @property
    def torch_device(self):
        """:attr:`device` resolved by :func:`detpretrain.distributed.resolve_device` (``auto``: CUDA if available)."""
        from detpretrain.distributed import resolve_device

        return resolve_device(self.device)

    def provenance(self, source=None, *, data: str | None = None, runs=None) -> str:
        """:func:`provenance` with this chapter's profile and date."""
        return provenance(source, profile=self.profile.name, data=data, runs=runs, date=self.date)


def chapter_setup(chapter: str, *, profile: str, store: str | os.PathLike | None = None,
                  data_cache: str | os.PathLike | None = None, device: str = "auto", **params) -> Chapter:
    """The preamble of every chapter: profile, run store with its corpus cache, device, parameters, date.

    Args:
        chapter: the chapter's name (its file stem in ``book/``).
        profile: a name of :data:`detpretrain.profiles.PROFILE_NAMES` (:func:`detpretrain.profiles.get_profile`).
        store: the run store folder; None means ``$DETPRETRAIN_RUNS`` or ``runs/``.
        data_cache: the generated-corpus folder; None means ``$DETPRETRAIN_DATA`` or ``data/generated``
            (:func:`detpretrain.data.builders.corpus_cache_dir`, the user-level default). It is carried by the run
            store to every function that builds a dataset; it never enters a run's config hash.
        device: ``"auto" | "cpu" | "cuda"``.
        **params: the chapter's other parameters (``dataset``, ``seeds``, ...), kept in :attr:`Chapter.params`;
            ``coco_root`` also becomes the profile's :attr:`~detpretrain.profiles.Profile.coco_root`.

    Returns:
        the :class:`Chapter`.

    Raises:
        ParameterError: a parameter the chapter does not declare, or a value of the wrong type or range
            (:func:`detpretrain.parameters.check_parameters`; names the parameter, what it expects and what it got).
        ConfigError: an unknown profile.
    """
    from detpretrain.data.builders import corpus_cache_dir
    from detpretrain.profiles import get_profile, with_coco_root
    from detpretrain.runs import RunStore

    from detpretrain.parameters import CHAPTER_PARAMETERS, check_parameters

    values = {"profile": profile, "store": store, "data_cache": data_cache, "device": device, **params}
    # the one place a chapter's parameters arrive: under raw papermill these are the checks `run` / `book` make
    # before executing (names and values against the declarations), so a bad value stops here, before any training
    if chapter in CHAPTER_PARAMETERS:
        values = {**values, **check_parameters(chapter, values)}
    prof = with_coco_root(get_profile(profile), values.get("coco_root"))  # the paper profile's COCO root, if given
    cache = Path(data_cache) if data_cache is not None else corpus_cache_dir()
    run_store = RunStore(store, data_cache=cache)
    return Chapter(name=chapter, profile=prof, store=run_store, data_cache=cache, device=device, params=values,
                   date=datetime.date.today().isoformat())


# ----------------------------------------------------------------------------------------------------- provenance


def run_hashes(result: Mapping, by: Iterable[str] | None = None) -> dict[str, list[str]]:
    """The config hashes of a result's runs, grouped: ``{label: [hash, ...]}`` in the runs' order.

    Args:
        result: a result dict of :mod:`detpretrain.experiments` with ``"runs"`` (entries with ``"pretrain"`` and
            ``"hash"``) or ``"rows"`` (the frozen-backbone study: ``"head"``, ``"mode"``, ``"hash"``).
        by: the entry keys whose values, joined by ``/``, label a group (default ``("pretrain",)`` for ``runs``,
            ``("head", "mode")`` for ``rows``).
    """
    entries = result.get("runs") or result.get("rows") or []
    keys = tuple(by) if by is not None else (("pretrain",) if "runs" in result else ("head", "mode"))
    out: dict[str, list[str]] = {}
    for entry in entries:
        out.setdefault("/".join(str(entry[k]) for k in keys), []).append(str(entry["hash"]))
    return out


def provenance(source: Mapping | None = None, *, profile: str | None = None, data: str | None = None,
               runs: Mapping[str, str | Iterable[str]] | None = None, date: str | None = None) -> str:
    """The book's one provenance line (module docstring): ``profile · data · runs · date``.

    Args:
        source: a result dict of :mod:`detpretrain.experiments` (``"profile"``, ``"data"`` and its runs); the
            keywords override what it gives.
        profile, data: the profile name and the data description.
        runs: ``{label: hash or [hashes]}`` (full or short hashes, or other run ids such as a random backbone's
            ``scratch-<hash>-s<seed>``, which are kept whole); default :func:`run_hashes` of ``source``.
        date: ISO date; default today.

    Returns:
        e.g. ``profile smoke · synthetic voc (...) · runs imagenet-cls: 1a2b3c4d, 5e6f7a8b; detection: 9c0d1e2f ·
        2026-05-01``.
    """
    source = source or {}
    profile = profile if profile is not None else source.get("profile", "?")
    data = data if data is not None else source.get("data", "?")
    runs = runs if runs is not None else run_hashes(source)
    groups = []
    for label, hashes in runs.items():
        hashes = [hashes] if isinstance(hashes, str) else list(hashes)
        groups.append(f"{label}: {', '.join(_short(h) for h in hashes)}")
    fields = [f"profile {profile}", str(data), "runs " + ("; ".join(groups) or "none"),
              date or datetime.date.today().isoformat()]
    return SEP.join(fields)


def _short(run_id: str) -> str:
    """A config hash (hex) cut to :data:`SHORT_HASH` digits; any other run id unchanged."""
    return run_id[:SHORT_HASH] if all(c in "0123456789abcdef" for c in run_id) else run_id


# ----------------------------------------------------------------------------------------------------- tables

#: CSS of every table (scoped to the table by its id): cell padding and rules, so columns never run together; cells
#: do not wrap (a wide table scrolls in its output area); alignment is set per column (numbers right, text left)
TABLE_STYLES = [
    {"selector": "", "props": "border-collapse: collapse; margin: 0.5em 0 1em 0; font-size: 0.9em;"},
    {"selector": "th, td", "props": "padding: 0.25em 0.8em; border-bottom: 1px solid #d0d0d0;"},
    {"selector": "td", "props": "white-space: nowrap;"},
    {"selector": "thead th", "props": "border-bottom: 2px solid #808080;"},
    {"selector": "th.row_heading", "props": "text-align: left;"},
]


class Table:
    """A DataFrame shown with fixed number formats: styled HTML (``_repr_html_``: the cells padded, numbers
    right-aligned) and aligned plain text (``repr``), both from the same formatted cells and both deterministic
    (no random ids or addresses), so nbval can compare them.

    Attributes:
        frame: the data (unformatted).
        text: the formatted cells (strings), what both representations show.
    """

    def __init__(self, frame: pd.DataFrame, text: pd.DataFrame, index: bool):
        self.frame, self.text, self.index = frame, text, index

    def _repr_html_(self) -> str:
        styler = self.text.style
        if not self.index:
            styler = styler.hide(axis="index")
        digest = hashlib.sha1(self.text.to_json(orient="split").encode()).hexdigest()[:10]
        styler = (styler.set_uuid(f"dp{digest}").set_table_attributes('class="dataframe detpretrain-table"')
                  .set_table_styles(TABLE_STYLES))
        for numeric in (True, False):  # numbers right-aligned, text left-aligned, headers alike
            cols = [c for c in self.frame.columns if pd.api.types.is_numeric_dtype(self.frame[c]) == numeric]
            if cols:
                align = "right" if numeric else "left"
                styler = styler.set_properties(subset=cols, **{"text-align": align})
                styler = styler.set_table_styles({c: [{"selector": "th", "props": f"text-align: {align};"}]
                                                  for c in cols}, overwrite=False)
        return styler.to_html()

    def __repr__(self) -> str:
        return self.text.to_string(index=self.index)


def format_value(value, *, precision: int = 1, fmt: str | Callable | None = None, na_rep: str = "–",
                 thousands: bool = False, numeric: bool = True) -> str:
    """One cell as text, the way pandas' Styler formats a numeric column: missing (None / NaN) -> ``na_rep``;
    ``fmt`` (a ``str.format`` pattern or a callable) if given; floats with ``precision`` decimals; integers as they
    are; ``thousands`` adds ``,`` separators to numbers; anything else ``str``. With ``numeric=False`` (a column of
    mixed values, e.g. a settings table) every present value is ``str``."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return na_rep
    if fmt is not None:
        return fmt.format(value) if isinstance(fmt, str) else fmt(value)
    sep = "," if thousands else ""
    if not numeric or isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        return f"{value:{sep}.{precision}f}"
    if isinstance(value, (int, np.integer)):
        return f"{value:{sep}d}"
    return str(value)


def table(frame: pd.DataFrame, *, precision: int = 1, formats: Mapping | None = None, index: bool = False,
          na_rep: str = "–", thousands: bool = False, roles: bool | Mapping[str, str] = False) -> Table:
    """A :class:`Table` of ``frame``: the one way the book shows a table.

    Args:
        precision: decimals of the cells of numeric columns (a column of mixed values shows ``str`` of each).
        formats: ``{column: str.format pattern or callable}`` for columns formatted otherwise (by the frame's own
            column names, before ``roles`` renames them).
        index: show the index (a chapter's configuration table, a table indexed by layer); default hidden.
        na_rep: text of a missing value.
        thousands: ``,`` between thousands.
        roles: name our pre-training keys in the headers (column labels, index values and names) as the paper's
            roles (:func:`detpretrain.paper.with_role_names`: ``"detection IoU"`` -> ``"COCO (detection) IoU"``),
            for tables whose headers name pre-trainings; the cells are left as they are. A mapping ``{key: name}``
            names the keys as a chapter names them instead (the eigenspectrum chapter's I and S detectors).
    """
    formats = dict(formats or {})
    if not index:  # not shown: a fresh one keeps the rendering independent of it (and unique, as Styler needs)
        frame = frame.reset_index(drop=True)
    text = frame.copy()
    for col in frame.columns:
        fmt = formats.get(col)
        numeric = pd.api.types.is_numeric_dtype(frame[col])
        text[col] = [format_value(v, precision=precision, fmt=fmt, na_rep=na_rep, thousands=thousands,
                                  numeric=numeric) for v in frame[col]]
    text = text.astype(object)
    if roles:
        frame, text = (_role_headers(f, roles if isinstance(roles, Mapping) else None) for f in (frame, text))
    return Table(frame, text, index)


def _role_headers(frame: pd.DataFrame, names: Mapping[str, str] | None) -> pd.DataFrame:
    """``frame`` with its column labels, index values and axis names passed through
    :func:`detpretrain.paper.with_role_names` (every level of a MultiIndex), or with each word that is a key of
    ``names`` replaced by its name."""
    from detpretrain.paper import with_role_names

    def rename(label):
        if names is None:
            return with_role_names(label)
        return " ".join(names.get(w, w) for w in label.split(" ")) if isinstance(label, str) else label

    out = frame.rename(columns=rename, index=rename)
    out.columns.names = [rename(n) for n in out.columns.names]
    out.index.names = [rename(n) for n in out.index.names]
    return out


def settings_frame(rows: Iterable[tuple[str, object]]) -> pd.DataFrame:
    """A chapter's configuration as a table: ``(setting, value)`` rows, indexed by ``setting``."""
    return pd.DataFrame(list(rows), columns=["setting", "value"]).set_index("setting")
