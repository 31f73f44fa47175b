"""The bench plumbing (not its speed): every measurement is present and RESULTS.md sections are replaced."""

from __future__ import annotations

import fastshower
from fastshower.bench import generator_flops_per_shower, write_results
from fastshower.models import build_model
from fastshower.models.bundle import save_bundle


def test_flops_per_shower_of_the_original_3dgan(tmp_path):
    pair = build_model("3dgan", (25, 25, 25))
    path = save_bundle(tmp_path / "g.pt", pair.generator, model_name="3dgan", cell_shape=(25, 25, 25),
                       model_config=pair.config, transform_power=1.0, transform_scale=1.0,
                       energy_range_GeV=(10.0, 510.0))
    flops = generator_flops_per_shower(fastshower.load(str(path)))
    # dense 200x3136 + convolutions 8->64 (6,6,8) on 7x7x8, 64->6 (6,5,8) on 13x14x9, 6->6 (3,3,8) on 26^3,
    # 6->1 (2,2,2) on 25^3: 2 * 254 M multiply-adds
    macs = (200 * 3136 + 8 * 64 * 288 * 392 + 64 * 6 * 240 * 13 * 14 * 9 + 6 * 6 * 72 * 26**3 + 6 * 8 * 25**3)
    assert abs(flops / (2 * macs) - 1) < 0.01


def test_write_results_replaces_only_its_section(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## A\nold a\n\n## B\nold b\n")
    write_results("## A\nnew a\n", path)
    text = path.read_text()
    assert "new a" in text and "old a" not in text and "old b" in text
    write_results("## C\nc\n", path)
    assert path.read_text().endswith("## C\nc\n")
