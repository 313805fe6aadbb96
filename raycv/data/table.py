"""metadata.csv as clinics export it -> a checked Table (ids, labels, raw features).

Exports come from Excel and hospital systems: Windows code pages, a UTF-8 byte-order
mark, missing-value codes ("NA", "#N/A", ...) and the odd text cell in a numeric
column ("pending", ">14"). The rules:

- text is decoded with `data.encoding` (a UTF-8 BOM is accepted); a file that is not
  valid in it is refused naming the key, suggesting cp1252 when that decodes it;
- in feature columns, an empty cell and every `data.na_values` token is missing; words
  such as "None" stay categories (no debridement, no exudate). The id and label columns
  count only an empty cell as missing, so a sample called "NA" keeps its name;
- a column whose non-missing cells are numbers except for a few text tokens (at least
  MOSTLY_NUMERIC of them numbers) is read as numeric with those tokens missing, and
  reported in one line naming the column, the tokens and the fix, never silently made
  categorical.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from raycv.data.settings import Settings
from raycv.errors import DataError

log = logging.getLogger(__name__)

# share of a column's non-missing cells that must parse as numbers for the column to be
# read as numeric with the rest (text tokens) missing: 9 in 10 tolerates a few
# "pending" or ">14" cells without turning a real category column into numbers
MOSTLY_NUMERIC = 0.9
_SHOWN_TOKENS = 5
# pandas < 3 parses floats only approximately unless asked; pandas 3 is exact by
# default (and deprecates the option). Exact parsing makes a written cohort read back
# bit-identical.
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


@dataclass(frozen=True)
class Table:
    """The checked metadata.csv: everything in a Dataset except the images."""

    sample_id: np.ndarray  # (N,) str
    patient_id: np.ndarray  # (N,) str
    y: np.ndarray  # (N,) int64 class index
    features: pd.DataFrame  # (N, F) float64 or object columns, NaN where missing
    warnings: tuple[str, ...] = ()  # one line each: columns read as numbers despite text
    labelled: bool = True  # False: new visits without a label column (raycv predict); y = 0

    def take(self, keep: np.ndarray) -> Table:
        """The rows where `keep` (bool) is true, in order (visits dropped for images)."""
        return Table(
            self.sample_id[keep],
            self.patient_id[keep],
            self.y[keep],
            self.features[keep].reset_index(drop=True),
            self.warnings,
            self.labelled,
        )


def decode_text(data: bytes, encoding: str, where: str) -> str:
    """File bytes -> text in `data.encoding`; a UTF-8 BOM is dropped."""
    try:
        utf8 = codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        raise DataError(
            f"data.encoding={encoding!r} is not a text encoding Python knows "
            "(e.g. utf-8, cp1252, latin-1)"
        ) from None
    try:
        return data.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        fix = "set data.encoding to the encoding it was written in (e.g. cp1252, latin-1)"
        try:
            data.decode("cp1252")
            fix = "it decodes as cp1252 (Excel on Windows): --set data.encoding=cp1252"
        except UnicodeDecodeError:
            pass
        raise DataError(
            f"{where}: not valid {encoding} text (byte 0x{data[exc.start]:02x} on line "
            f"{line}; data.encoding={encoding}); {fix}"
        ) from None


def header(text: str, where: str) -> list[str]:
    names = next(csv.reader(io.StringIO(text)), [])
    if not names:
        raise DataError(f"{where} is empty: expected a header row")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise DataError(f"{where}: column(s) {dup} appear more than once")
    return names


def parse_csv(text: str, names: list[str], settings: Settings, where: str) -> pd.DataFrame:
    """The CSV text -> a raw frame: ids and labels as text, features as pandas reads them."""
    roles = {settings.columns.sample_id, settings.columns.patient_id, settings.columns.label}
    missing = sorted({"", *settings.na_values})  # an empty cell is always missing
    try:
        return pd.read_csv(
            io.StringIO(text),
            dtype={c: str for c in roles if c in names},  # '007' stays '007'
            keep_default_na=False,
            na_values={c: ([""] if c in roles else missing) for c in names},
            **_EXACT_FLOATS,
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{where}: cannot parse as CSV ({str(exc).splitlines()[0]})") from None


def row(sample_id: np.ndarray, i: int) -> str:
    """How messages point at a row: counted from 1 after the header, with its id."""
    return f"row {i + 1} (sample_id {str(sample_id[i])!r})"


def read_table(
    frame: pd.DataFrame, settings: Settings, where: str, labels_optional: bool = False
) -> Table:
    """Check the metadata table and turn it into arrays; `where` names it in messages.

    labels_optional: a table without the label column is new visits to predict.
    """
    cols = settings.columns
    roles = {"sample_id": cols.sample_id, "patient_id": cols.patient_id, "label": cols.label}
    labelled = cols.label in frame.columns or not labels_optional
    if not labelled:
        roles.pop("label")
    for role, name in roles.items():
        if name not in frame.columns:
            hint = ""
            if len(frame.columns) == 1 and ";" in str(frame.columns[0]):
                hint = " (it looks ;-separated, as Excel writes in some locales: save with commas)"
            raise DataError(
                f"{where} has no column {name!r} (the {role} column, data.columns.{role}); "
                f"its columns are {list(frame.columns)}{hint}"
            )
    _check_feature_names(settings, list(frame.columns), set(roles.values()), where)
    if "metadata" in settings.modalities and not settings.features:
        raise DataError(
            f"data.modalities includes 'metadata' but {where} has no feature columns "
            f"(its columns are {list(frame.columns)}); drop 'metadata' or add features"
        )
    if len(frame) == 0:
        raise DataError(f"{where} has no rows")

    ids = {}
    for role, name in list(roles.items())[:2]:
        values = frame[name]
        if values.isna().any():
            i = int(np.flatnonzero(values.isna())[0])
            raise DataError(f"{where} row {i + 1}: empty {role} (column {name!r})")
        ids[role] = np.asarray(values.to_numpy(dtype=object), dtype=str)
    sample_id = ids["sample_id"]
    seen: dict[str, int] = {}
    for i, sid in enumerate(sample_id):
        if sid in seen:
            raise DataError(
                f"{where}: duplicate sample_id {str(sid)!r} in rows {seen[sid] + 1} and {i + 1}; "
                "each sample (visit) needs its own id"
            )
        seen[sid] = i
    if labelled:
        y = _label_indices(frame[cols.label], settings.classes, sample_id, where)
    else:
        y = np.zeros(len(sample_id), dtype=np.int64)
    features, warnings = _features(frame, settings.features, sample_id, where)
    for line in warnings:
        log.warning(line)
    return Table(sample_id, ids["patient_id"], y, features, tuple(warnings), labelled)


def _check_feature_names(settings: Settings, names: list[str], roles: set, where: str) -> None:
    listed = list(settings.features)
    dup = sorted({f for f in listed if listed.count(f) > 1})
    if dup:
        raise DataError(f"data.features lists {dup} more than once")
    clash = [f for f in listed if f in roles]
    if clash:
        # a label among the features would leak the answer into the forest
        raise DataError(f"data.features lists {clash}, which are id or label columns")
    missing = [f for f in listed if f not in names]
    if missing:
        raise DataError(
            f"{where} has no feature column(s) {missing} (data.features); its columns are {names}"
        )


def _label_indices(labels: pd.Series, classes: tuple[str, ...], sample_id, where: str):
    empty = labels.isna().to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise DataError(f"{where} {row(sample_id, i)}: empty label")
    index = {c: k for k, c in enumerate(classes)}
    text = labels.to_numpy(dtype=object)
    for i, label in enumerate(text):
        if label not in index:
            n_bad = sum(v not in index for v in text)
            raise DataError(
                f"{where} {row(sample_id, i)}: unknown label {label!r} "
                f"({n_bad} row(s) in all); allowed classes: {list(classes)} (data.classes)"
            )
    return np.array([index[v] for v in text], dtype=np.int64)


def _features(frame: pd.DataFrame, names, sample_id, where: str) -> tuple[pd.DataFrame, list]:
    """Numeric columns -> float64; anything else -> object dtype of str, NaN when missing.

    Plain object (not pandas' string dtype) keeps the sklearn code downstream simple.
    """
    out, warnings = {}, []
    for name in names:
        col = frame[name]
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        if not numeric:
            as_numbers, line = _mostly_numeric(col, name, where)
            if as_numbers is not None:
                col, numeric = as_numbers, True
            if line:
                warnings.append(line)
        if numeric:
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            inf = np.isinf(values)
            if inf.any():
                i = int(np.flatnonzero(inf)[0])
                raise DataError(f"{where} {row(sample_id, i)}: feature {name!r} is infinite")
            out[name] = pd.Series(values, dtype=np.float64)
        else:
            missing = col.isna().to_numpy()
            values = np.array([str(v) for v in col.to_numpy(dtype=object)], dtype=object)
            values[missing] = np.nan
            out[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame))), warnings


def _mostly_numeric(col: pd.Series, name: str, where: str) -> tuple[pd.Series | None, str]:
    """A text column that is numbers but for a few tokens -> (numbers, the report line)."""
    present = col.dropna()
    if len(present) == 0 or col.dtype.kind == "b":
        return None, ""
    numbers = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    if float(numbers.notna().mean()) < MOSTLY_NUMERIC:
        return None, ""
    tokens = present[numbers.isna()].astype(str).value_counts()
    shown = ", ".join(f"{t!r} x{n}" for t, n in tokens.head(_SHOWN_TOKENS).items())
    more = f" and {len(tokens) - _SHOWN_TOKENS} more" if len(tokens) > _SHOWN_TOKENS else ""
    line = (
        f"{where} column {name!r} is read as numbers: {int(tokens.sum())} of its "
        f"{len(present)} filled cells hold text ({shown}{more}), read as missing; if these "
        f"mean 'missing' add them to data.na_values, otherwise correct those cells"
    )
    full = pd.Series(np.nan, index=col.index, dtype=np.float64)
    full[present.index] = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    return full, (line if len(tokens) else "")
