"""metadata.csv as Excel and hospital systems export it: missing-value codes, encodings, stray text."""

from __future__ import annotations

import logging

import numpy as np

from raycv.data import load_dataset
from tests.test_data import CSV, config_for, make_folder, refusal

EXPORT = """sample_id,patient_id,label,hba1c,debridement,site
007,p1,I,7.2,None,Fuß
S2,p1,P,#N/A,sharp,Zehe
S3,p2,R,pending,None,Ferse
S4,p2,P,8.1,,Fuß
S5,p3,I,6.9,NA,Zehe
S6,p3,R,>14,sharp,Ferse
S7,p4,P,7.7,sharp,Fuß
S8,p4,I,9.0,None,Zehe
S9,p5,R,6.4,sharp,Ferse
S10,p5,P,7.1,None,Fuß
S11,p6,I,8.8,sharp,Zehe
S12,p6,R,7.5,None,Ferse
S13,p7,P,6.6,sharp,Fuß
S14,p7,I,7.9,None,Zehe
S15,p8,R,8.3,sharp,Ferse
S16,p8,P,7.0,None,Fuß
S17,p9,I,6.8,sharp,Zehe
S18,p9,R,9.4,None,Ferse
S19,p10,P,7.4,sharp,Fuß
S20,p10,I,8.0,None,Zehe
S21,p10,R,7.3,sharp,Ferse
"""


def export_folder(tmp_path, text=EXPORT, encoding="utf-8"):
    root = make_folder(tmp_path / "d")  # six maps; the other visits get theirs below
    (root / "metadata.csv").write_bytes(text.encode(encoding))
    for line in text.splitlines()[7:]:
        np.save(root / "thermal_map" / f"{line.split(',')[0]}.npy", np.zeros((8, 8)))
    return root


def test_none_stays_a_category_and_na_codes_are_missing(tmp_path):
    features = load_dataset(config_for(export_folder(tmp_path))).features
    debridement = features["debridement"]
    assert debridement[0] == "None" and debridement[2] == "None"  # no debridement: a category
    assert debridement.isna().tolist()[3:5] == [True, True]  # empty and NA
    assert np.isnan(features["hba1c"][1])  # '#N/A', Excel's


def test_na_values_decide_what_is_missing(tmp_path):
    config = config_for(export_folder(tmp_path), na_values=["None", "NA"])
    debridement = load_dataset(config).features["debridement"]
    assert debridement.isna().tolist()[:5] == [True, False, True, True, True]  # empty stays so


def test_a_mostly_numeric_column_is_read_as_numbers_and_reported(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="raycv"):
        ds = load_dataset(config_for(export_folder(tmp_path)))
    hba1c = ds.features["hba1c"]
    assert hba1c.dtype == np.float64 and hba1c[0] == 7.2
    assert np.isnan(hba1c[2]) and np.isnan(hba1c[5])  # 'pending', '>14'
    (line,) = ds.notes["warnings"]
    assert "column 'hba1c' is read as numbers" in line and "2 of its 20 filled cells" in line
    assert "'pending' x1" in line and "'>14' x1" in line and "data.na_values" in line
    assert line in caplog.text and "\n" not in line
    # a column that is mostly text stays categorical, silently
    assert ds.features["debridement"].dtype == object


def test_listing_the_tokens_in_na_values_silences_the_report(tmp_path):
    config = config_for(export_folder(tmp_path), na_values=["", "NA", "#N/A", "pending", ">14"])
    ds = load_dataset(config)
    assert ds.notes["warnings"] == [] and ds.features["hba1c"].dtype == np.float64


def test_cp1252_text_is_refused_naming_the_key_then_read_with_it(tmp_path):
    root = export_folder(tmp_path, encoding="cp1252")
    message = refusal(config_for(root))
    assert "metadata.csv: not valid utf-8 text (byte 0xdf on line 2" in message
    assert "data.encoding" in message and "--set data.encoding=cp1252" in message
    ds = load_dataset(config_for(root, encoding="cp1252"))
    assert ds.features["site"][0] == "Fuß"


def test_a_utf8_bom_is_accepted(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "metadata.csv").write_bytes(b"\xef\xbb\xbf" + CSV.encode())
    ds = load_dataset(config_for(root))
    assert ds.sample_id[0] == "007" and "age" in ds.features


def test_an_unknown_encoding_is_refused_naming_the_key(tmp_path):
    message = refusal(config_for(make_folder(tmp_path / "d"), encoding="klingon"))
    assert "data.encoding='klingon' is not a text encoding" in message


def test_a_semicolon_separated_export_gets_a_hint(tmp_path):
    root = make_folder(tmp_path / "d", csv=CSV.replace(",", ";"))
    assert "looks ;-separated" in refusal(config_for(root))
