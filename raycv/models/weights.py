"""`image.weights`: where a backbone's starting weights come from, checked before any
training.

`none` starts from random weights. A path or URI names a state dict: `.safetensors`
(read by safetensors), or `.pth` / `.pt` / `.bin` (read by `torch.load(weights_only=True)`,
which runs no code). `imagenet` is timm's own pretrained weights: the file its hub keeps
in the Hugging Face cache (HF_HOME, default ~/.cache/huggingface), or in torch's
(TORCH_HOME) for the few models timm fetches by URL. When the file is not cached, the
hub is asked for it once, on the driver; on a machine that cannot reach it the answer
is a refusal in seconds (timm's own download retries for about a minute, then fails
with a page of warnings), saying where to put the file. Never a silent fall-back to
random weights.

A file fits a backbone when every tensor of the backbone (its classifier aside: raycv's
head replaces it) is in the file with the same shape, and the file holds nothing else:
a file of a deeper sibling (resnet34 for resnet18) would otherwise load half-used.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from raycv.config_coercion import ConfigError

if TYPE_CHECKING:  # torch is imported where a file is read: a cache key needs only hashlib
    import torch

NONE, IMAGENET = "none", "imagenet"
STATE_DICT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_HUB_TIMEOUT_S = 3.0  # enough for a reachable hub to answer; an offline machine fails sooner


@dataclass(frozen=True)
class WeightsFile:
    """A checked weights file of one backbone: where it is and what it holds."""

    spec: str  # as the config says it: imagenet, or the path / URI
    location: str  # the file to load (for imagenet: in the cache)
    digest: str  # sha256 of its bytes: names the weights in content keys

    def state_dict(self) -> dict[str, torch.Tensor]:
        return read_state_dict(_read_bytes(self.location, self.spec), self.location)


def resolve(backbone: str, spec: str, key: str) -> WeightsFile | None:
    """The checked weights file `spec` names for `backbone` (None: random weights).

    ConfigError naming `key` (image.weights or image.modalities.<m>.weights) for a file
    that is missing, unreadable or does not fit, and for imagenet weights that are
    neither cached nor reachable.
    """
    if spec == NONE:
        return None
    location = imagenet_file(backbone, key) if spec == IMAGENET else spec
    data = _read_bytes(location, f"{key}={spec!r}")
    state = read_state_dict(data, f"{key}={spec!r}")
    check_fit(backbone, state, f"{key}={spec!r}")
    return WeightsFile(spec, location, hashlib.sha256(data).hexdigest())


def digests(config) -> dict[str, str]:
    """sha256 of each starting weights file the image section names (its own, and each
    image.modalities entry's): what a cached phase trained from, beside the config's
    spelling of where it was. Independent of data.modalities, as the phases it keys are
    (an ablation's combinations share them)."""
    named = {"image": (config.image.backbone, config.image.weights)}
    named |= {f"image.modalities.{m}": config.image.model_of(m) for m in config.image.modalities}
    return {
        key: _digest(backbone, spec, *_stamp(spec))
        for key, (backbone, spec) in sorted(named.items())
        if spec != NONE and backbone != "cnn"
    }


def _stamp(spec: str) -> tuple:
    """(size, mtime) of a local weights file, so an overwritten file is hashed again."""
    try:
        stat = os.stat(spec)
        return stat.st_size, stat.st_mtime_ns
    except OSError:
        return (None, None)


@functools.lru_cache(maxsize=32)
def _digest(backbone: str, spec: str, size, mtime) -> str:
    location = imagenet_file(backbone, "image.weights") if spec == IMAGENET else spec
    return hashlib.sha256(_read_bytes(location, f"image.weights={spec!r}")).hexdigest()


def read_state_dict(data: bytes, where: str) -> dict[str, torch.Tensor]:
    """A state dict from file bytes; a checkpoint's {'state_dict': ...} or {'model': ...}
    wrapper is opened. ConfigError naming `where` for anything else."""
    import torch

    try:
        if data[:2] == b"PK" or data[:1] == b"\x80":  # torch.save's zip, or its old pickle
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        else:
            from safetensors.torch import load

            state = load(data)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one refusal
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise ConfigError(
            f"{where}: not a state dict that loads without running code "
            f"(.safetensors, or .pth/.pt saved from model.state_dict()): {first}"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and set(state) == {wrapper} and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{where}: holds {type(state).__name__}, not a state dict of tensors")
    return state


def check_fit(backbone: str, state: dict[str, torch.Tensor], where: str) -> None:
    """Refuse a state dict that does not fit the backbone, naming the first tensor."""
    model = _headless(backbone)
    expected = model.state_dict()
    state = strip_classifier(backbone, state)
    for name, tensor in expected.items():
        if name not in state:
            raise ConfigError(
                f"{where} does not fit {backbone}: it has no tensor {name!r} "
                f"({len(state)} tensors in the file, {len(expected)} in {backbone})"
            )
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ConfigError(
                f"{where} does not fit {backbone}: tensor {name!r} has shape "
                f"{tuple(state[name].shape)}, {backbone} needs {tuple(tensor.shape)}"
            )
    if extra := [n for n in state if n not in expected]:
        raise ConfigError(
            f"{where} does not fit {backbone}: it holds {len(extra)} tensor(s) {backbone} "
            f"has not, first {extra[0]!r} (weights of another architecture?)"
        )


def strip_classifier(backbone: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict without the pretrained classifier raycv's head replaces."""
    heads = _classifier_names(backbone)
    return {
        k: v for k, v in state.items() if not any(k == h or k.startswith(h + ".") for h in heads)
    }


def imagenet_file(backbone: str, key: str) -> str:
    """The cached file of timm's pretrained weights for `backbone`; fetched from the hub
    first when it is reachable. ConfigError naming `key` otherwise, in seconds."""
    cfg = _headless(backbone).pretrained_cfg
    hub_id, url = cfg.get("hf_hub_id"), cfg.get("url")
    if not hub_id and not url:
        raise ConfigError(f"{key}=imagenet: timm has no pretrained weights for {backbone!r}")
    if hub_id:
        from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

        repo, _, revision = hub_id.partition("@")
        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return found
        where = f"{constants.HF_HUB_CACHE}/models--{repo.replace('/', '--')}"
        host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
        _refuse_unless_reachable(key, backbone, host, where, constants.HF_HUB_OFFLINE)
        try:
            return hf_hub_download(repo, "model.safetensors", revision=revision or None)
        except Exception as exc:  # noqa: BLE001 - the hub's errors are many; one refusal
            raise ConfigError(
                f"{key}=imagenet: fetching {backbone}'s weights failed: {exc}"
            ) from None
    target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if target.is_file():
        return str(target)
    _refuse_unless_reachable(key, backbone, urlparse(url).hostname, str(target.parent), False)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(target), progress=False)
    return str(target)


def _refuse_unless_reachable(key, backbone, host, where, offline) -> None:
    reason = "HF_HUB_OFFLINE is set" if offline else _unreachable(host)
    if reason:
        raise ConfigError(
            f"{key}=imagenet: {backbone}'s pretrained weights are not cached ({where}) and "
            f'{reason}; on a machine with internet run `python -c "import timm; '
            f"timm.create_model('{backbone}', pretrained=True)\"` and copy its cache "
            "(HF_HOME, default ~/.cache/huggingface) here, or give image.weights a file"
        )


def _unreachable(host: str | None) -> str | None:
    """Why `host` cannot be reached on port 443 (None: it answered), within seconds."""
    try:
        socket.create_connection((host, 443), timeout=_HUB_TIMEOUT_S).close()
        return None
    except OSError as exc:
        return f"{host} cannot be reached ({exc.strerror or exc})"


def _read_bytes(location: str, where: str) -> bytes:
    from raycv.storage import filesystem

    if not location.lower().endswith(STATE_DICT_SUFFIXES):
        raise ConfigError(
            f"{where}: expected none, imagenet, or a weights file ending in "
            f"{', '.join(STATE_DICT_SUFFIXES)}"
        )
    try:
        fs, path = filesystem(location)
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except Exception as exc:  # noqa: BLE001 - missing file, bad URI, no permission
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise ConfigError(f"{where}: cannot read the weights file ({first})") from None


def _classifier_names(backbone: str) -> list[str]:
    head = _headless(backbone).pretrained_cfg.get("classifier") or []
    return [head] if isinstance(head, str) else list(head)


_MODELS: dict[str, torch.nn.Module] = {}


def _headless(backbone: str) -> torch.nn.Module:
    """timm's `backbone` without its classifier, random weights (built once per name)."""
    if backbone not in _MODELS:
        import timm

        _MODELS[backbone] = timm.create_model(backbone, pretrained=False, num_classes=0)
    return _MODELS[backbone]
