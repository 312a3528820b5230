"""Every graph of the corpus (tests/graph_corpus.py) prints and parses back into an equal
graph, before and after the rewriting passes."""
import pytest

from fusegrad.compiler import run_passes
from fusegrad.compiler.ir import parse_graph, print_graph, structurally_equal
from fusegrad.compiler.passes import shapes
from graph_corpus import corpus


@pytest.mark.parametrize("name,graph", corpus(), ids=[name for name, _ in corpus()])
def test_graph_round_trips_through_text(name, graph):
    after, _ = run_passes(graph)
    for g in [graph] + [g for _, g in after]:
        text = print_graph(g)
        back = parse_graph(text)
        assert print_graph(back) == text
        assert structurally_equal(g, back)
        shapes.infer(back)
