"""Generation speed of a generator bundle on a CUDA GPU: ms per shower at batch sizes 1, 16, 128, 1024 in fp32
and bf16, timed with CUDA events around the network alone (noise already on the device), for the path generation
runs (the exact fast rewrite of ``models/inference.py``, weights in the precision) and for the original generator
(bf16 by autocast), plus the bf16 matmul rate of the card for scale.

Run on a GPU machine: ``python benchmarks/bench_gpu_generate.py MODEL [--json out.json]`` (MODEL: a bundle path
or a shipped name). The CPU numbers come from ``fastshower bench``.
"""

from __future__ import annotations

import argparse
import json

import torch

from fastshower.generate import load

BATCHES = (1, 16, 128, 1024)


def time_ms(fn: object, repeats: int) -> float:
    """Mean milliseconds of ``fn()`` over ``repeats`` calls after warm-up, by CUDA events."""
    for _ in range(3):
        fn()  # type: ignore[operator]
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()  # type: ignore[operator]
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / repeats


def main() -> None:
    """Time the model and print (and optionally write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    sampler = load(args.model, device="cuda")
    gen, latent = sampler.generator, sampler.bundle.latent_dim
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    matmul_ms = time_ms(lambda: a @ a, 10)
    rows = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "bf16_matmul_tflops": 2 * 8192**3 / matmul_ms / 1e9, "ms_per_shower": {}}
    for path in ("generation", "original"):
        for precision in ("fp32", "bf16"):
            net = sampler.inference_generator(precision) if path == "generation" else gen
            autocast = path == "original" and precision == "bf16"
            for batch in BATCHES:
                noise = torch.randn(batch, latent, device="cuda")
                energy = torch.full((batch,), 100.0, device="cuda")
                cast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast)

                def run(net: object = net, noise: torch.Tensor = noise, energy: torch.Tensor = energy,
                        cast: object = cast) -> None:
                    with torch.inference_mode(), cast:  # type: ignore[attr-defined]
                        net(noise, energy)  # type: ignore[operator]

                repeats = max(5, 4096 // batch)
                rows["ms_per_shower"][f"{path} {precision} batch {batch}"] = time_ms(run, repeats) / batch
    for key, value in rows["ms_per_shower"].items():
        print(f"{key:>28}: {value:.4f} ms/shower")
    print(f"bf16 matmul 8192^3: {rows['bf16_matmul_tflops']:.0f} TFLOP/s on {rows['device']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
