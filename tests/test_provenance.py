"""provenance.json's machine section: the GPUs as the NVIDIA driver's nvidia-smi lists them
(CI has none, so a stand-in nvidia-smi script on PATH answers here)."""

from __future__ import annotations

import stat

import pytest

from raycv.provenance import gpus


def fake_nvidia_smi(folder, body: str) -> None:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            'printf "NVIDIA H100 80GB HBM3\\nNVIDIA H100 80GB HBM3\\n"',
            ["NVIDIA H100 80GB HBM3"] * 2,
        ),
        ('echo "NVIDIA-SMI has failed: no driver" >&2; exit 9', []),  # a broken driver
    ],
)
def test_gpus_are_the_drivers_list(tmp_path, monkeypatch, body, expected):
    fake_nvidia_smi(tmp_path, body)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpus() == expected


def test_a_machine_without_nvidia_smi_has_no_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder
    assert gpus() == []
