"""benchmarks/gpu.py on the CPU: the quick run end to end, the budget cut-off, the ORT path with the CPU
provider, and the MFU arithmetic and peak lookup on made-up figures and device names."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from benchmarks.gpu import (
    add_mfu,
    derive,
    model_flops_utilisation,
    ort_figures,
    peak_bf16_flops,
    profile_category,
    quick_plan,
    run_benchmark,
)
from gcl_vectordb.encoders.models import create_clip_model


@pytest.mark.slow
def test_quick_run_measures_every_cpu_mode_and_writes_files(tmp_path: Path) -> None:
    result = run_benchmark(quick_plan(budget_s=600), tmp_path, full_size=False)
    saved = json.loads((tmp_path / "gpu.quick.json").read_text())
    assert saved["training"] == result["training"] and (tmp_path / "gpu.quick.md").is_file()
    modes = {(r["mode"], r["batch"]) for r in result["inference"]}
    assert modes == {(m, b) for m in ("eager fp32", "bf16 autocast") for b in (4, 8)}
    for row in result["inference"]:
        assert "error" not in row and row["images_per_s"] > 0
        if row["mode"] == "eager fp32":
            assert row["vs_eager_fp32"] == 1.0
    assert [(r["mode"], r["batch"]) for r in result["training"]] == [("eager", 4), ("eager", 8)]
    for row in result["training"]:
        assert "error" not in row and row["pairs_per_s"] > 0 and row["last_loss"] > 0
        assert row["mfu"] is None and "gcl-micro" in row["mfu_reason"]  # 44.3e9 is ViT-B-32's figure
    [profile] = result["profile"]  # at the largest batch: its time per category adds up to the busy time
    assert (profile["mode"], profile["batch"]) == ("eager", 8) and "error" not in profile
    assert sum(profile["categories"].values()) == pytest.approx(profile["busy_ms_per_step"])
    assert profile["categories"]["matmul"] > 0 and 0 < profile["busy_ms_per_step"] <= profile["wall_ms_per_step"] * 1.05
    assert profile["top_kernels"][0]["ms_per_step"] == max(k["ms_per_step"] for k in profile["top_kernels"])
    skipped = {s["what"]: s["reason"] for s in result["skipped"]}
    assert "torch.compile" in skipped["inference compile bf16"] and "torch.compile" in skipped["training compile"]
    assert "CUDAExecutionProvider" in " ".join(skipped)  # the CPU onnxruntime package does not offer it
    text = (tmp_path / "gpu.quick.md").read_text()
    assert "| eager fp32 | 4 |" in text and "| eager | 8 |" in text and "| matmul |" in text


def test_a_spent_budget_records_every_measurement_as_skipped(tmp_path: Path) -> None:
    plan = dataclasses.replace(quick_plan(budget_s=0), batches=(4,))
    result = run_benchmark(plan, tmp_path, full_size=False)
    assert result["inference"] == [] and result["training"] == []
    what = [s["what"] for s in result["skipped"]]
    assert {"inference eager fp32 batch 4", "inference bf16 autocast batch 4", "training batch 4",
            "training profile eager batch 4"} <= set(what)
    assert all("budget" in s["reason"] for s in result["skipped"]
               if s["what"].startswith(("inference e", "inference b", "training batch", "training profile")))


def test_ort_image_tower_runs_on_the_provider_it_is_given() -> None:
    figures = ort_figures(create_clip_model("gcl-micro"), 2, "CPUExecutionProvider", quick_plan(budget_s=600))
    assert figures["images_per_s"] > 0 and figures["ms_per_batch"] > 0


def test_mfu_is_pairs_per_second_times_flop_per_pair_over_the_peak() -> None:
    # 8000 pairs/s × 44.3e9 FLOP = 3.544e14 FLOP/s; ÷ 989e12 = 0.358342; ÷ a measured 790e12 = 0.448608.
    assert model_flops_utilisation(8000, 44.3e9, 989e12) == pytest.approx(0.3583417593)
    meta = {"arch": "ViT-B-32", "image_size": 224, "peak_bf16_flops": 989e12, "peak_reason": None,
            "matmul_bf16_flops": 790e12}
    row = {"batch": 512, "pairs_per_s": 8000.0}
    add_mfu(row, meta)
    assert row["mfu"] == pytest.approx(0.3583417593) and row["mfu_vs_matmul"] == pytest.approx(0.4486075949)
    unknown = {"batch": 512, "pairs_per_s": 8000.0}
    add_mfu(unknown, meta | {"peak_bf16_flops": None, "peak_reason": "no dense bf16 peak known for 'X'"})
    assert unknown["mfu"] is None and unknown["mfu_reason"] == "no dense bf16 peak known for 'X'"
    small = {"batch": 512, "pairs_per_s": 8000.0}
    add_mfu(small, meta | {"image_size": 64})
    assert small["mfu"] is None and "64 px" in small["mfu_reason"]


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 SXM5 80GB", 989e12), ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA H200", 989e12), ("NVIDIA H200 NVL", None), ("NVIDIA H100 NVL", None), ("NVIDIA A100-SXM4-80GB", None),
])
def test_peak_lookup_by_device_name(name: str, peak: float | None) -> None:
    found, reason = peak_bf16_flops(name)
    assert found == peak
    assert (reason is None) == (peak is not None) and (reason is None or name in reason)


def test_ratios_against_eager_fp32_and_the_smallest_batch() -> None:
    result = {"meta": {"arch": "ViT-B-32", "image_size": 224, "peak_bf16_flops": 989e12, "peak_reason": None},
              "inference": [{"mode": "eager fp32", "batch": 256, "images_per_s": 100.0},
                            {"mode": "bf16 autocast", "batch": 256, "images_per_s": 250.0},
                            {"mode": "compile bf16", "batch": 256, "error": "out of memory"},
                            {"mode": "bf16 autocast", "batch": 512, "images_per_s": 300.0}],
              "training": [{"batch": 512, "pairs_per_s": 1500.0}, {"batch": 256, "pairs_per_s": 1000.0},
                           {"batch": 1024, "error": "out of memory"},
                           {"mode": "compile", "batch": 512, "pairs_per_s": 1800.0}],
              "profile": [{"batch": 512, "categories": {"matmul": 100.0, "attention": 10.0, "other elementwise": 50.0}}]}
    derive(result)
    assert [r["vs_eager_fp32"] for r in result["inference"]] == [1.0, 2.5, None, None]  # no fp32 at 512
    assert [r["vs_smallest_batch"] for r in result["training"]] == [1.5, 1.0, None, None]  # eager rows only
    assert [r["vs_eager"] for r in result["training"]] == [1.0, 1.0, None, pytest.approx(1.2)]
    # 512 pairs × 44.3e9 FLOP over the matmul + attention kernels' 110 ms
    assert result["profile"][0]["matmul_flops"] == pytest.approx(512 * 44.3e9 / 0.110)
    assert result["training"][2]["mfu"] is None and result["training"][2]["mfu_reason"] == "out of memory"


@pytest.mark.parametrize(("name", "category"), [
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "matmul"),
    ("nvjet_tst_128x256_64x4_2x1_v_bz_coopB_TNT", "matmul"), ("aten::addmm", "matmul"),
    ("void cudnn::cnn::wgrad_alg1_engine<__nv_bfloat16, float, 128, 6, 7, 3, 3, 5, false, true>", "matmul"),
    ("void precomputed_convolve_sgemm<__nv_bfloat16, 128, 6, 7, 3, 3, 5, 1, false>", "matmul"),
    ("triton_per_fused__to_copy_add_native_layer_norm_0", "layer norm / softmax"),
    ("triton_poi_fused_add_gelu_3", "other elementwise"),
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64>>", "attention"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedOptimizerTensorListMetadata>", "optimizer + grad clip (multi-tensor)"),
    ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16>", "layer norm / softmax"),
    ("Memcpy DtoD (Device -> Device)", "copies, casts, memset"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>", "other elementwise"),
    ("aten::mm_backward_helper", "other elementwise"),  # aten operator names match whole
])
def test_profile_categories_by_kernel_or_operator_name(name: str, category: str) -> None:
    assert profile_category(name) == category
