"""Every graph the test suite compiled prints and parses back into an equal graph.

Named to run last: tests/conftest.py records each graph handed to the compiler."""
from fusegrad.compiler.ir import parse_graph, print_graph, structurally_equal
from fusegrad.compiler.passes import shapes

from conftest import RECORDED_GRAPHS


def test_every_compiled_graph_round_trips_through_text():
    assert RECORDED_GRAPHS, "run with the rest of the suite: no graphs were recorded"
    seen = set()
    for g in RECORDED_GRAPHS:
        text = print_graph(g)
        if text in seen:
            continue
        seen.add(text)
        back = parse_graph(text)
        assert print_graph(back) == text
        assert structurally_equal(g, back)
        shapes.infer(back)
