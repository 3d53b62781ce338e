"""Load a model's weights and run batches of tiles through it.

Three kinds (the card's ``kind``): a state_dict of a built-in architecture, a TorchScript file,
an ONNX file (onnxruntime). Each backend takes ``(N, C, H, W) float32`` numpy tiles and returns
``(N, K, H, W) float32`` raw outputs (no activation). Weights are checked against the card's
sha256 before loading; a mismatch or an unreadable file raises
:class:`~cellbench.core.errors.DataError` naming the file.

CPU runs in float32 and is deterministic (same input, same output, bit for bit). CUDA runs in
bfloat16 autocast by default (``amp``) for torch models, or the CUDA execution provider for ONNX.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cellbench.core import hashing
from cellbench.core.errors import DataError


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a weights file (remembered per file version:
    :func:`cellbench.core.hashing.sha256_file`)."""
    p = Path(path)
    try:
        return hashing.sha256_file(p)
    except OSError as e:
        raise DataError(p, f"weights file not found ({e.strerror or e})") from None


def verify_weights(path: Path, expected: str) -> None:
    """Raise :class:`DataError` when the file's sha256 differs from the card's."""
    got = sha256_file(path)
    if got != expected:
        raise DataError(
            path,
            f"sha256 mismatch: the model card says {expected[:12]}..., the file has "
            f"{got[:12]}... (corrupted download or not the card's weights)",
        )


#: torch.compile backend (``inductor``; tests use ``eager`` to check the wiring quickly).
COMPILE_BACKEND = os.environ.get("CELLBENCH_COMPILE_BACKEND", "inductor")


class TorchBackend:
    """A ``torch.nn.Module`` (built-in architecture or TorchScript) on a device.

    On CUDA: bfloat16 autocast (``amp``) and channels-last memory (convolutions run on tensor
    cores in NHWC); ``compile`` wraps the module in ``torch.compile`` (first batches of each
    shape compile, later ones run the fused kernels; worth it for long runs on a GPU).
    """

    def __init__(self, module, device: str = "cpu", amp: bool = True, compile: bool = False):
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise DataError(Path(device), "CUDA was requested but no CUDA device is available")
        self.torch = torch
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.amp = amp and self.device.type == "cuda"
        # channels-last also on the CPU: oneDNN's NHWC convolutions are ~2x faster there
        self.channels_last = True
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.compiled = bool(compile)
        if compile:
            self.module = torch.compile(self.module, backend=COMPILE_BACKEND, dynamic=None)
        self.max_batch: int | None = None
        self.fixed_tile: int | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.amp:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    y = self.module(x)
            else:
                y = self.module(x)
        if isinstance(y, (tuple, list)):
            y = y[0]
        return y.float().cpu().numpy()


class OnnxBackend:
    """An onnxruntime session; honours fixed batch and tile sizes declared by the graph."""

    def __init__(self, path: Path, device: str = "cpu"):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise DataError(path, "CUDA was requested but onnxruntime has no CUDA provider")
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.note = ""
        self.compiled = False
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # noqa: BLE001 - any onnxruntime failure is a file problem
            raise DataError(path, f"cannot load ONNX model: {type(e).__name__}: {e}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        self.max_batch = shape[0] if isinstance(shape[0], int) else None
        fixed = [s for s in shape[2:] if isinstance(s, int)]
        self.fixed_tile = fixed[0] if len(fixed) == 2 and fixed[0] == fixed[1] else None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run(None, {self.input_name: x})[0].astype(np.float32, copy=False)


def load_backend(
    card, device: str = "cpu", amp: bool = True, verify: bool = True, compile: bool = False
):
    """Verify the card's weights and return a callable backend for them.

    Parameters
    ----------
    card
        A :class:`~cellbench.models.card.LoadedCard`.
    device
        ``cpu``, ``cuda`` or ``cuda:N``.
    amp
        bfloat16 autocast on CUDA for torch models.
    verify
        Check the sha256 first (always on, except for weights being written by training).
    compile
        ``torch.compile`` torch models (:class:`TorchBackend`); ONNX models ignore it.
    """
    path = card.weights_path
    if path.is_symlink() and not path.exists():
        raise DataError(path, f"weights of model '{card.id}': a broken or looping symbolic link")
    if not path.is_file():
        raise DataError(path, f"weights of model '{card.id}' not found")
    if verify:
        verify_weights(path, card.weights.sha256)
    if card.kind == "onnx":
        return OnnxBackend(path, device)
    import torch

    if card.kind == "torchscript":
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as e:  # noqa: BLE001
            raise DataError(
                path, f"cannot load TorchScript model: {type(e).__name__}: {e}"
            ) from None
        return TorchBackend(module, device, amp, compile)
    from cellbench.models.nets import build

    module = build(card.architecture, **card.kwargs)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise DataError(path, f"cannot load checkpoint: {type(e).__name__}: {e}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(
            path, f"weights do not fit architecture '{card.architecture}' {card.kwargs}: {msg}"
        ) from None
    if device == "cpu" and not compile and getattr(card, "cpu_backend", "auto") != "torch":
        from cellbench.models.export import onnx_export

        onnx_path, note = onnx_export(card, module)
        if onnx_path is not None:
            backend = OnnxBackend(onnx_path, device)
            backend.note = note
            return backend
        if card.cpu_backend == "onnx":
            import warnings

            warnings.warn(f"model '{card.id}': {note}", stacklevel=2)
    return TorchBackend(module, device, amp, compile)
