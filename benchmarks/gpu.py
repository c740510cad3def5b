"""GPU throughput of ViT-B-32: image-tower inference (eager fp32, bf16 autocast, torch.compile) and GCL training MFU.

Device run (`run` tool, carry [".whl"], timeout_s 450; `--budget-s` 330 leaves room for the last compile;
≈ 4 min on an H200), one line:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py --out $OUT --budget-s 330

then copy $OUT/gpu.{json,md} into benchmarks/results/. The H200 image has torch, torchvision, timm,
huggingface_hub, safetensors, regex, tqdm, onnx and onnxruntime; only open_clip, ftfy (+ wcwidth) and ijson travel,
fetched here first into the git-ignored .whl/ of the checkout that the session runs from:

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 ijson==3.6.0

    python benchmarks/gpu.py --quick    # CPU, gcl-micro, batches 4/8, 2 steps: proves the script works

A. Inference: the image tower (`model.visual`, random init) on pre-made random pixels (batch, 3, 224, 224)
on the device, under `torch.inference_mode()`; images/s = batch / median seconds per call (median of
`reps` rounds of `iters` calls, synchronised, after warm-up). Ratios are against eager fp32 at the same batch.
B. Training: full CLIP (both towers), bf16 autocast, the repository's weighted symmetric InfoNCE with graded
weights and its AdamW; pairs/s = batch / median step seconds, eager at every batch (as the trainer runs) and,
at the largest, with the forward and loss under torch.compile. MFU = pairs/s × 44.3e9 / peak, with 44.3e9 FLOP
per image-text pair (ViT-B-32 at 224 px, forward + backward) and the card's dense bf16 peak; ratios are
against the smallest eager batch and against eager at the same batch. A bf16 8192³ matmul gives the
achievable peak in the same run (MFU vs matmul).
C. Profile: torch.profiler over the eager and the compiled step at the largest batch; each GPU kernel's own
time summed per category (matmul and convolution, attention, layer norm / softmax, copies and casts, the
optimizer's multi-tensor kernels, other elementwise) against the step's wall time — what limits MFU.
Each measurement is written to `--out` as it finishes; none starts after `--budget-s` (recorded as skipped).
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks._results import RESULTS, write_results  # noqa: E402
from gcl_vectordb.encoders.models import LoadedClip, create_clip_model  # noqa: E402

FLOP_PER_PAIR = {"ViT-B-32": 44.3e9}  # forward + backward of both towers at 224 px (the issue's figure)
# Dense bf16 tensor-core peaks, FLOP/s; the first substring found in the device name wins.
PEAK_BF16 = (("H100 PCIe", 756e12), ("H100 SXM", 989e12), ("H100 80GB HBM3", 989e12), ("H200", 989e12))


@dataclass(frozen=True)
class Plan:
    device: str
    arch: str
    batches: tuple[int, ...]
    warmup: int
    reps: int  # inference rounds (median over them)
    iters: int  # inference calls per round
    steps: int  # timed training steps (median step time)
    compile: bool
    budget_s: float


def full_plan(budget_s: float) -> Plan:
    return Plan("cuda", "ViT-B-32", (256, 512, 1024), warmup=3, reps=5, iters=10, steps=10, compile=True,
                budget_s=budget_s)


def quick_plan(budget_s: float) -> Plan:
    return Plan("cpu", "gcl-micro", (4, 8), warmup=1, reps=2, iters=2, steps=2, compile=False, budget_s=budget_s)


def peak_bf16_flops(device_name: str) -> tuple[float | None, str | None]:
    """(dense bf16 peak FLOP/s, None) for a known card, else (None, why not)."""
    if "NVL" in device_name:
        return None, f"{device_name!r}: NVL cards run at other clocks; their peak is not in the table"
    for fragment, peak in PEAK_BF16:
        if fragment in device_name:
            return peak, None
    return None, f"no dense bf16 peak known for {device_name!r}"


def model_flops_utilisation(pairs_per_s: float, flop_per_pair: float, peak_flops: float) -> float:
    """MFU = pairs/s × FLOP per pair / peak FLOP/s (0..1)."""
    return pairs_per_s * flop_per_pair / peak_flops


class Run:
    """The results so far, rewritten to `out` after every measurement; stops new work past the budget."""

    def __init__(self, plan: Plan, out: Path, full_size: bool) -> None:
        self.plan, self.out, self.full_size = plan, out, full_size
        self.started = time.monotonic()
        self.result: dict = {"meta": {}, "inference": [], "training": [], "profile": [], "skipped": []}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {message}", flush=True)

    def may_start(self, what: str) -> bool:
        if self.elapsed() < self.plan.budget_s:
            return True
        self.result["skipped"].append({"what": what, "reason": f"budget of {self.plan.budget_s:.0f} s spent"})
        self.say(f"skipped {what}: budget spent")
        self.save()
        return False

    def add(self, section: str, row: dict) -> None:
        self.result[section].append(row)
        self.say(f"{section}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        self.save()

    def save(self) -> None:
        self.result["meta"]["elapsed_s"] = round(self.elapsed(), 1)
        derive(self.result)
        write_results("gpu", self.result, markdown(self.result), full_size=self.full_size, out_dir=self.out,
                      echo=False)


def derive(result: dict) -> None:
    """Ratios (inference: × eager fp32 at the same batch; training: eager × the smallest eager batch, and
    every mode × eager at the same batch), MFU, and the profile's matmul rate."""
    base = {r["batch"]: r["images_per_s"] for r in result["inference"] if r["mode"] == "eager fp32" and "error" not in r}
    for row in result["inference"]:
        row["vs_eager_fp32"] = (row["images_per_s"] / base[row["batch"]]
                                if "error" not in row and row["batch"] in base else None)
    eager = {r["batch"]: r["pairs_per_s"] for r in result["training"]
             if r.get("mode", "eager") == "eager" and "error" not in r}
    first = eager[min(eager)] if eager else None
    for row in result["training"]:
        ok = "error" not in row
        row["vs_smallest_batch"] = (row["pairs_per_s"] / first if ok and first and row.get("mode", "eager") == "eager"
                                    else None)
        row["vs_eager"] = row["pairs_per_s"] / eager[row["batch"]] if ok and row["batch"] in eager else None
        add_mfu(row, result["meta"])
    meta = result["meta"]
    flop = FLOP_PER_PAIR.get(meta.get("arch")) if meta.get("image_size") == 224 else None
    for row in result.get("profile", []):
        dense_ms = sum(row.get("categories", {}).get(c, 0.0) for c in ("matmul", "attention"))
        # the step's model FLOPs are (almost all) matmul and attention: their rate while those kernels ran
        row["matmul_flops"] = row["batch"] * flop / (dense_ms / 1e3) if flop and dense_ms and "error" not in row else None


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def guarded(run: Run, section: str, row: dict, measure) -> None:
    """Run `measure()` (→ dict of figures) and record its row; an OOM or other failure is recorded instead."""
    device = run.plan.device
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        row |= measure()
    except torch.OutOfMemoryError:
        row["error"] = "out of memory"
    except Exception as exc:  # a compile or kernel failure must not end a one-shot device run
        row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    if device == "cuda":
        row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        torch.cuda.empty_cache()
    run.add(section, row)


def median_call_seconds(fn, plan: Plan) -> float:
    for _ in range(plan.warmup):
        fn()
    sync(plan.device)
    rounds = []
    for _ in range(plan.reps):
        start = time.perf_counter()
        for _ in range(plan.iters):
            fn()
        sync(plan.device)
        rounds.append((time.perf_counter() - start) / plan.iters)
    return statistics.median(rounds)


def inference_figures(visual: torch.nn.Module, pixels: torch.Tensor, mode: str, plan: Plan) -> dict:
    """images/s of `visual` on pixels (batch, 3, S, S) in `mode`: eager fp32, bf16 autocast, compile bf16."""
    tower = torch.compile(visual, dynamic=False) if mode == "compile bf16" else visual
    bf16 = mode != "eager fp32"

    def call() -> None:
        with torch.inference_mode(), torch.autocast(plan.device, dtype=torch.bfloat16, enabled=bf16):
            tower(pixels)

    start = time.perf_counter()
    call()  # the first call compiles in compile mode
    sync(plan.device)
    first_call_s = time.perf_counter() - start
    seconds = median_call_seconds(call, plan)
    return {"images_per_s": pixels.shape[0] / seconds, "ms_per_batch": seconds * 1e3, "first_call_s": first_call_s}


def training_step(model: torch.nn.Module, optimizer, batch: int, image_size: int, plan: Plan, mode: str):
    """One bf16-autocast GCL training step on synthetic pixels (batch, 3, S, S) and tokens (batch, 77), as a
    closure returning the loss; `mode` "compile" runs the forward and loss through torch.compile (the backward
    is compiled with it), "eager" as the trainer does."""
    from trainer.losses import ScoreColumns, make_weight_transform, weighted_symmetric_infonce

    gen = torch.Generator().manual_seed(batch)
    pixels = torch.randn(batch, 3, image_size, image_size, generator=gen).to(plan.device)
    tokens = torch.randint(1, 49407, (batch, 77), generator=gen)
    tokens[:, -1] = 49407  # end-of-text: the highest id, where the text tower pools
    tokens = tokens.to(plan.device)
    scores = torch.randint(0, 101, (batch,), generator=gen).float()  # graded relevance, as in the splits
    weights = make_weight_transform("linear")(ScoreColumns(score_linear=scores)).to(plan.device)

    def forward_loss() -> torch.Tensor:
        with torch.autocast(plan.device, dtype=torch.bfloat16):
            images, texts = model.encode_image(pixels), model.encode_text(tokens)
        return weighted_symmetric_infonce(F.normalize(texts.float(), dim=-1), F.normalize(images.float(), dim=-1),
                                          model.logit_scale.exp().float(), weights)

    loss_of = torch.compile(forward_loss, dynamic=False) if mode == "compile" else forward_loss

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return float(loss.detach())  # synchronises, as the recipe's per-step logging does

    return step


NO_COMPILE_ON_CPU = "torch.compile is not run on the CPU (--quick): it takes minutes here; the device run measures it"


def time_steps(step, batch: int, plan: Plan) -> dict:
    """pairs/s of `step` (median step time after warm-up; the first step, which compiles in compile mode, is
    timed on its own)."""
    start = time.perf_counter()
    step()
    first_step_s = time.perf_counter() - start
    for _ in range(plan.warmup):
        step()
    times, loss = [], None
    for _ in range(plan.steps):
        start = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"pairs_per_s": batch / seconds, "ms_per_step": seconds * 1e3, "last_loss": loss,
            "first_step_s": first_step_s}


# Kernel (CUDA) or operator (CPU) names → what the step spends its time on; the first match wins.
PROFILE_CATEGORIES = (
    # the patch-embedding convolution is a matmul too (its FLOPs are in the step's count)
    ("matmul", re.compile(r"gemm|nvjet|cutlass|xmma|cublas|triton_tem|convolve|wgrad|dgrad|cudnn::cnn|"
                          r"aten::(addmm|mm|bmm|baddbmm|linear|matmul|convolution|_convolution|mkldnn_convolution)$",
                          re.I)),
    ("attention", re.compile(r"flash|fmha|attention|sdpa|aten::_scaled_dot", re.I)),
    ("optimizer + grad clip (multi-tensor)", re.compile(r"multi_tensor|foreach|adam", re.I)),
    ("layer norm / softmax", re.compile(r"layer_norm|layernorm|softmax", re.I)),
    ("copies, casts, memset", re.compile(r"memcpy|memset|copy_|aten::to$|aten::_to_copy", re.I)),
)


def profile_category(name: str) -> str:
    return next((label for label, pattern in PROFILE_CATEGORIES if pattern.search(name)), "other elementwise")


def profile_steps(step, plan: Plan) -> dict:
    """Where a training step's time goes: torch.profiler over `plan.steps` calls of `step` (already warm), the
    GPU kernels' own time (the CPU operators' on the CPU) summed per category, against the steps' wall time.
    Kernels do not nest, so their self times add up to the time the GPU was busy."""
    from torch.profiler import ProfilerActivity, profile

    step()
    cuda = plan.device == "cuda"
    kind = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
    with profile(activities=[ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(plan.steps):
            step()
        wall_ms = (time.perf_counter() - start) * 1e3 / plan.steps
    per_kernel: dict[str, float] = {}
    for event in prof.key_averages():
        own_us = event.self_device_time_total if cuda else event.self_cpu_time_total
        if event.device_type == kind and own_us > 0:
            per_kernel[event.key] = per_kernel.get(event.key, 0.0) + own_us / 1e3 / plan.steps
    busy_ms = sum(per_kernel.values())
    categories: dict[str, float] = {}
    for name, ms in per_kernel.items():
        category = profile_category(name)
        categories[category] = categories.get(category, 0.0) + ms
    top = sorted(per_kernel.items(), key=lambda item: -item[1])[:8]
    return {"wall_ms_per_step": wall_ms, "busy_ms_per_step": busy_ms,
            "categories": dict(sorted(categories.items(), key=lambda item: -item[1])),
            "top_kernels": [{"name": name[:160], "ms_per_step": ms} for name, ms in top]}


def add_mfu(row: dict, meta: dict) -> None:
    flop = FLOP_PER_PAIR.get(meta["arch"]) if meta["image_size"] == 224 else None
    reason = (row.get("error") or (flop is None and f"no FLOP-per-pair figure for {meta['arch']} at "
                                              f"{meta['image_size']} px") or meta["peak_reason"])
    if reason:
        row["mfu"], row["mfu_reason"] = None, reason
        return
    row["mfu"] = model_flops_utilisation(row["pairs_per_s"], flop, meta["peak_bf16_flops"])
    if meta.get("matmul_bf16_flops"):
        row["mfu_vs_matmul"] = model_flops_utilisation(row["pairs_per_s"], flop, meta["matmul_bf16_flops"])


def matmul_bf16_flops(n: int = 8192, calls: int = 10) -> float:
    """Achieved FLOP/s of an (n, n) @ (n, n) bf16 product on the GPU: 2n³ per call, mean of `calls` after 3."""
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * calls / (time.perf_counter() - start)


def ort_figures(loaded: LoadedClip, batch: int, provider: str, plan: Plan) -> dict:
    """images/s of the exported image tower (fp32 ONNX, host numpy input) on onnxruntime's `provider`."""
    import onnxruntime as ort

    from exporters.towers import export_tower

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.onnx"
        export_tower(loaded, "image", path, opset=17)
        session = ort.InferenceSession(str(path), providers=[provider])
    if session.get_providers()[0] != provider:  # onnxruntime falls back to the CPU silently
        raise RuntimeError(f"onnxruntime did not take {provider}: {session.get_providers()}")
    name = session.get_inputs()[0].name
    pixels = torch.randn(batch, 3, loaded.image_size, loaded.image_size).numpy()
    seconds = median_call_seconds(lambda: session.run(None, {name: pixels}), plan)
    return {"images_per_s": batch / seconds, "ms_per_batch": seconds * 1e3}


def ort_section(run: Run, loaded: LoadedClip, provider: str = "CUDAExecutionProvider") -> None:
    import onnxruntime as ort

    offered = ort.get_available_providers()
    run.result["meta"] |= {"onnxruntime": ort.__version__, "ort_providers": offered,
                           "ort_cuda_offered": "CUDAExecutionProvider" in offered}
    what, batch = f"onnxruntime {provider}", run.plan.batches[0]
    if provider not in offered:
        run.result["skipped"].append({"what": what, "reason": f"onnxruntime {ort.__version__} offers only {offered}"})
        run.say(f"skipped {what}: not offered ({offered})")
    elif run.may_start(what):
        guarded(run, "inference", {"mode": what, "batch": batch}, partial(ort_figures, loaded, batch, provider, run.plan))


def inference_section(run: Run, loaded: LoadedClip, modes: tuple[str, ...]) -> None:
    plan, size = run.plan, loaded.image_size
    visual = loaded.model.visual.to(plan.device).eval()
    for batch in plan.batches:
        pixels = torch.randn(batch, 3, size, size, device=plan.device)
        for mode in modes:
            if run.may_start(f"inference {mode} batch {batch}"):
                guarded(run, "inference", {"mode": mode, "batch": batch},
                        partial(inference_figures, visual, pixels, mode, plan))
        del pixels


def training_section(run: Run, image_size: int) -> None:
    """Eager steps at every batch; then, at the largest, the profile and (device runs) the compiled step."""
    from trainer.config import OptimConfig
    from trainer.optim import create_optimizer

    plan = run.plan
    model = create_clip_model(plan.arch).model.to(plan.device).train()
    optimizer = create_optimizer(model, OptimConfig())
    for batch in plan.batches:
        if run.may_start(f"training batch {batch}"):
            guarded(run, "training", {"mode": "eager", "batch": batch},
                    lambda batch=batch: time_steps(training_step(model, optimizer, batch, image_size, plan, "eager"),
                                                   batch, plan))
    largest = plan.batches[-1]
    modes = ("eager", "compile") if plan.compile else ("eager",)
    if not plan.compile:
        run.result["skipped"].append({"what": "training compile", "reason": NO_COMPILE_ON_CPU})
    for mode in modes:  # the largest batch: the eager step's profile, then the compiled step timed and profiled
        step = training_step(model, optimizer, largest, image_size, plan, mode)
        if mode == "compile" and run.may_start(f"training compile batch {largest}"):
            guarded(run, "training", {"mode": mode, "batch": largest}, partial(time_steps, step, largest, plan))
        if run.may_start(f"training profile {mode} batch {largest}"):
            guarded(run, "profile", {"mode": mode, "batch": largest}, partial(profile_steps, step, plan))


def describe(plan: Plan) -> dict:
    cuda = plan.device == "cuda"
    name = torch.cuda.get_device_name() if cuda else (platform.processor() or platform.machine())
    peak, reason = peak_bf16_flops(name) if cuda else (None, "CPU run: no tensor-core peak")
    return {"device": plan.device, "device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "arch": plan.arch, "batches": list(plan.batches), "warmup": plan.warmup, "reps": plan.reps,
            "iters": plan.iters, "steps": plan.steps, "budget_s": plan.budget_s,
            "flop_per_pair": FLOP_PER_PAIR.get(plan.arch), "peak_bf16_flops": peak, "peak_reason": reason,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}


def run_benchmark(plan: Plan, out: Path, full_size: bool) -> dict:
    """Every measurement in turn (cheap and most wanted first, compile last); returns the results dict."""
    run = Run(plan, out, full_size)
    meta = run.result["meta"]
    meta |= describe(plan)
    run.say(f"{meta['device_name']}: torch {meta['torch']}, {plan.arch}, batches {plan.batches}")
    if plan.device == "cuda":
        meta["matmul_bf16_flops"] = matmul_bf16_flops()
        run.say(f"bf16 matmul: {meta['matmul_bf16_flops'] / 1e12:.0f} TFLOP/s")
    loaded = create_clip_model(plan.arch)
    meta["image_size"] = loaded.image_size
    ort_section(run, loaded)
    inference_section(run, loaded, ("eager fp32", "bf16 autocast"))
    training_section(run, loaded.image_size)
    if plan.compile:
        inference_section(run, loaded, ("compile bf16",))
    else:
        run.result["skipped"].append({"what": "inference compile bf16", "reason": NO_COMPILE_ON_CPU})
    run.save()
    return run.result


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [f"# GPU throughput: {meta.get('arch')} image tower and GCL training", "",
             f"{meta.get('device_name')}; torch {meta.get('torch')} (CUDA {meta.get('cuda')}), onnxruntime "
             f"{meta.get('onnxruntime')} (providers {meta.get('ort_providers')}); random init; "
             f"{meta.get('elapsed_s')} s in all. fp32 means TF32 matmul {meta.get('tf32_matmul')}, TF32 conv "
             f"{meta.get('tf32_cudnn')} (torch defaults). Peak memory is `torch.cuda.max_memory_allocated`.", "",
             "## A. Image tower inference", "",
             "| mode | batch | images/s | × eager fp32 | ms/batch | peak GiB | note |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in result["inference"]:
        note = r.get("error") or (f"first call {r['first_call_s']:.1f} s" if "first_call_s" in r else "")
        lines.append(f"| {r['mode']} | {r['batch']} | {_fmt(r.get('images_per_s'), '.0f')} | "
                     f"{_fmt(r.get('vs_eager_fp32'), '.2f')} | {_fmt(r.get('ms_per_batch'), '.1f')} | "
                     f"{_fmt(r.get('peak_memory_gib'), '.2f')} | {note} |")
    matmul = meta.get("matmul_bf16_flops")
    lines += ["", "## B. Training (bf16 autocast, weighted symmetric InfoNCE, AdamW)", "",
              f"MFU = pairs/s × {_fmt(meta.get('flop_per_pair'), '.3g')} FLOP/pair ÷ dense bf16 peak "
              f"{_fmt(meta.get('peak_bf16_flops'), '.3g')} FLOP/s ({meta.get('peak_reason') or 'spec sheet'}); "
              f"'vs matmul' divides by the bf16 8192³ matmul measured in this run "
              f"({_fmt(matmul and matmul / 1e12, '.0f')} TFLOP/s).", "",
              "| mode | batch | pairs/s | × smallest eager batch | × eager | ms/step | MFU | MFU vs matmul | peak GiB | note |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["training"]:
        note = r.get("error") or r.get("mfu_reason") or (f"first step {r['first_step_s']:.1f} s"
                                                          if r.get("mode") == "compile" else "")
        lines.append(f"| {r.get('mode', 'eager')} | {r['batch']} | {_fmt(r.get('pairs_per_s'), '.0f')} | "
                     f"{_fmt(r.get('vs_smallest_batch'), '.2f')} | {_fmt(r.get('vs_eager'), '.2f')} | "
                     f"{_fmt(r.get('ms_per_step'), '.1f')} | {_fmt(r.get('mfu'), '.1%')} | "
                     f"{_fmt(r.get('mfu_vs_matmul'), '.1%')} | {_fmt(r.get('peak_memory_gib'), '.2f')} | {note} |")
    lines += profile_markdown(result)
    skipped = [f"- {s['what']}: {s['reason']}" for s in result["skipped"]]
    lines += ["", "## Skipped", "", *(skipped or ["- none"])]
    return "\n".join(lines) + "\n"


def profile_markdown(result: dict) -> list[str]:
    """Section C: where each profiled training step's time goes, per kernel category, against its wall time."""
    lines = ["", "## C. Where a training step's time goes (torch.profiler)", ""]
    for r in result.get("profile", []):
        if "error" in r:
            lines.append(f"{r.get('mode', 'eager')}, batch {r['batch']}: {r['error']}")
            continue
        wall = r["wall_ms_per_step"]
        rate = r.get("matmul_flops")
        busy = "the GPU busy" if result["meta"].get("device") == "cuda" else "the CPU operators' own time"
        lines += [f"{r.get('mode', 'eager').capitalize()}, batch {r['batch']}: {wall:.1f} ms per step (wall, profiler on), {busy} "
                  f"{r['busy_ms_per_step']:.1f} ms of it ({r['busy_ms_per_step'] / wall:.0%}); the step's model FLOPs "
                  f"over the matmul + attention kernels' time: {_fmt(rate and rate / 1e12, '.0f')} TFLOP/s.", "",
                  "| kernels | ms/step | share of wall time |", "|---|---:|---:|"]
        lines += [f"| {name} | {ms:.1f} | {ms / wall:.0%} |" for name, ms in r["categories"].items()]
        lines += [f"| GPU idle (launches, host work, syncs) | {max(wall - r['busy_ms_per_step'], 0):.1f} | "
                  f"{max(wall - r['busy_ms_per_step'], 0) / wall:.0%} |", "", f"Largest kernels ({r.get('mode', 'eager')}):", "",
                  "| kernel | ms/step |", "|---|---:|"]
        lines += [f"| `{k['name'].replace('|', '/').replace('`', '')}` | {k['ms_per_step']:.2f} |" for k in r["top_kernels"]]
    return lines if len(lines) > 3 else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU, gcl-micro, tiny batches (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for gpu.{json,md} (a device run: $OUT)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="start no measurement after this many seconds (the device allows 600 per command)")
    args = parser.parse_args()
    if not args.quick and not torch.cuda.is_available():
        parser.error("no CUDA device here; use --quick for the CPU smoke run")
    plan = quick_plan(args.budget_s) if args.quick else full_plan(args.budget_s)
    result = run_benchmark(plan, args.out, full_size=not args.quick)
    print(markdown(result), flush=True)


if __name__ == "__main__":
    main()
