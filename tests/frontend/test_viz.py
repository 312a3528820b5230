"""Pictures of compiled programs (issue 17): `lower(...).to_dot()` draws each node once with
kernels as clusters and byte counts on the edges that read buffers; `fusegrad.viz.render`
colours kernels by the roofline fraction a profile measured and runs Graphviz's `dot` (or
says how to install it); `fusegrad.viz.roofline_plot` plots one point per kernel."""
import os
import re
import shutil
from types import SimpleNamespace

import pytest

import fusegrad
import fusegrad.nn as nn
import fusegrad.optim as optim
import fusegrad.profiler
import fusegrad.viz as viz
from fusegrad.roofline import Roofline

HAS_DOT = shutil.which("dot") is not None


@pytest.fixture(scope="module")
def seed_step():
    """The compiled linear-regression step of examples/linear_regression.py, its data, and its lowering."""
    fusegrad.manual_seed(1)
    x = fusegrad.rand(100, 1) * 10
    y = 2.5 * x + 1 + fusegrad.randn(100, 1)
    model, loss_fn = nn.Linear(1, 1), nn.MSELoss()
    optimizer = optim.SGD(model.parameters(), lr=0.01)

    def step(x, y):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    compiled = fusegrad.compile(step)
    return compiled, x, y, compiled.lower(x, y)


def declared(dot: str) -> list:
    return re.findall(r'^\s+("[^"]+") \[label=', dot, re.M)


def test_to_dot_draws_every_node_and_edge_once(seed_step):
    dot = seed_step[3].to_dot()
    nodes = declared(dot)
    assert len(nodes) == len(set(nodes))
    edges = re.findall(r'^\s+("[^"]+") -> ("[^"]+")', dot, re.M)
    assert len(edges) == len(set(edges))
    assert {a for a, _ in edges} | {b for _, b in edges} <= set(nodes)
    clusters = re.findall(r"^  subgraph cluster_(\w+) \{", dot, re.M)
    assert clusters == [k.name for k in seed_step[3].kernels]


def test_edges_that_read_a_buffer_carry_its_size(seed_step):
    dot = seed_step[3].to_dot()
    assert '  "%x" -> "%1" [label="400 B"];' in dot.splitlines()       # x: f32[100,1], read by the matmul
    assert '  "%1" -> "%3";' in dot.splitlines()                        # the matmul's epilogue: no buffer
    assert '  "%9" -> "out:out0" [label="4 B"];' in dot.splitlines()
    assert 'tooltip="output requested"' in dot


def rows_for(program, fractions: dict) -> list:
    return [SimpleNamespace(name=name, program=program, roofline=f, total_ns=2000, count=2)
            for name, f in fractions.items()]


def test_profiled_kernels_are_filled_by_their_roofline_fraction(seed_step):
    lowered = seed_step[3]
    other = SimpleNamespace(name="k1", program=fusegrad.compiler.compile(fusegrad.compiler.parse_graph(
        "graph g(%x: f32[2]) {\n  %0: f32[2] = neg %x\n  return y=%0\n}")), roofline=1.0, total_ns=1, count=1)
    dot = viz.dot_source(lowered, rows_for(lowered.program, {"k0": 0.0, "k3": 0.5}) + [other])
    lines = dot.splitlines()
    k0 = lines.index("  subgraph cluster_k0 {")
    assert lines[k0 + 2] == '    style="rounded,filled"; fillcolor="0.000 0.450 1.000"; ' \
                            'label="k0: matmul\\n0 % of roofline, 1.0 us";'
    k3 = lines.index("  subgraph cluster_k3 {")
    assert lines[k3 + 2].startswith('    style="rounded,filled"; fillcolor="0.167 0.450 1.000"; '
                                    'label="k3: matmul\\n50 %')
    assert dot.count("fillcolor") == 2              # k1 is another program's kernel; the others were not timed
    assert viz.dot_source(lowered) == lowered.to_dot()


def test_a_fraction_is_computed_from_limits_when_rows_have_none(seed_step):
    program = seed_step[3].program
    k0 = program.kernels[0]
    rows = [SimpleNamespace(name="k0", bytes=k0.bytes_moved, flops=k0.flops, seconds=1e-6)]
    (point,) = [p for p in viz.kernel_points(program, rows, bandwidth=1e9, peak_flops=1e12) if p.seconds]
    assert point.fraction == pytest.approx(max(k0.bytes_moved / 1e9, k0.flops / 1e12) / 1e-6)


def test_render_without_graphviz_says_how_to_install_it(seed_step, monkeypatch, tmp_path):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    with pytest.raises(viz.GraphvizNotFoundError) as e:
        viz.render(seed_step[3], tmp_path / "graph.svg")
    for advice in ("apt-get install graphviz", "conda install graphviz", "to_dot()"):
        assert advice in str(e.value)
    path = viz.render(seed_step[3], tmp_path / "graph.dot")        # the text needs no graphviz
    assert open(path).read() == seed_step[3].to_dot() + "\n"


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed (apt-get install graphviz)")
def test_render_draws_the_profiled_kernel_graph_with_graphviz(seed_step, tmp_path):
    compiled, x, y, lowered = seed_step
    n = max(os.cpu_count() or 1, fusegrad.runtime.get_num_threads())
    machine = Roofline({}, {t: 1e10 for t in range(1, n + 1)}, {t: 1e11 for t in range(1, n + 1)})
    with fusegrad.profiler.profile(roofline=machine) as prof:
        compiled(x, y)
    assert viz.dot_source(lowered, prof).count("fillcolor") == len(lowered.kernels)
    svg = open(viz.render(lowered, tmp_path / "graph.svg", prof)).read()
    assert "<svg" in svg and "k0: matmul" in svg and "% of roofline" in svg


def test_roofline_plot_has_one_point_per_kernel(seed_step, tmp_path):
    pytest.importorskip("matplotlib", reason="roofline_plot needs matplotlib")
    lowered = seed_step[3]
    path = viz.roofline_plot(lowered, tmp_path / "roof.png", bandwidth=1e10, peak_flops=1e11)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    rows = [SimpleNamespace(key=f"step.{k.name}", name=k.name, bytes_moved=k.bytes_moved, flops=k.flops,
                            total_ns=1000, count=1) for k in lowered.kernels]
    path = viz.roofline_plot(rows, tmp_path / "profiled.png", bandwidth=1e10, peak_flops=1e11)
    assert os.path.getsize(path) > 1000
