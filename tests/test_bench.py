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
    # The generator's layers: dense 200x3136 + convolutions 8->64 (6,6,8) on 7x7x8, 64->6 (6,5,8) on 13x14x9,
    # 6->6 (3,3,8) on 26^3, 6->1 (2,2,2) on 25^3: 254 M multiply-adds. Generation runs their exact rewrite
    # (fastshower.models.inference): Dense+first convolution as one 200 x 25088 matrix, the two upsampling
    # convolutions in polyphase form, 64->48 (4,3,5) on 7x7x5 and 6->72 (2,2,4) on 14x14x10, and the last one
    # on the phases, 72->12 (2,2,2) on 13x13x9: 74 M multiply-adds.
    original = 200 * 3136 + 8 * 64 * 288 * 392 + 64 * 6 * 240 * 13 * 14 * 9 + 6 * 6 * 72 * 26**3 + 6 * 8 * 25**3
    rewrite = 200 * 25088 + 64 * 48 * 60 * 7 * 7 * 5 + 6 * 72 * 16 * 14 * 14 * 10 + 72 * 12 * 8 * 13 * 13 * 9
    assert abs(original / 254e6 - 1) < 0.01
    assert abs(flops / (2 * rewrite) - 1) < 0.01


def test_write_results_replaces_only_its_section(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## A\nold a\n\n## B\nold b\n")
    write_results("## A\nnew a\n", path)
    text = path.read_text()
    assert "new a" in text and "old a" not in text and "old b" in text
    write_results("## C\nc\n", path)
    assert path.read_text().endswith("## C\nc\n")
