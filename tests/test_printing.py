"""theta.printing (issue 13, item 3): pprint in Theano's infix form, pydotprint (the DOT text of
the graph before and after rewrites with fused kernel groups as clusters; a PNG/SVG only where
graphviz is installed), debugprint of a compiled function listing its kernels, a readable
``print(f.program)`` with each kernel parameter named after the variable it carries."""
import shutil

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.errors import BackendError, OptionError
from theta.printing import debugprint, pprint, pydotprint


def _layer(backend="emu"):
    x = T.fmatrix("x")
    W = theta.shared(np.ones((3, 4), "float32"), name="W")
    b = theta.shared(np.zeros(4, "float32"), name="b")
    y = T.tanh(T.dot(x, W) + b)
    f = theta.function([x], [y, y.sum()], backend=backend)
    f(np.ones((2, 3), "float32"))
    return f


# -- pprint ---------------------------------------------------------------------------------------

def test_pprint_is_theanos_infix_form():
    x, y = T.fmatrix("x"), T.fmatrix("y")
    W = theta.shared(np.ones((3, 3), "float32"), name="W")
    assert pprint(x + y * 2) == "(x + (y * 2))"
    assert pprint(x - y) == "(x - y)"
    assert pprint(x / y) == "(x / y)"
    assert pprint(-x) == "-x"
    assert pprint(x ** 2) == "(x ** 2)"
    assert pprint(T.tanh(x)) == "tanh(x)"
    assert pprint(T.exp(-x)) == "exp(-x)"
    assert pprint(T.switch(x > 0, x, 0)) == "switch((x > 0), x, 0)"
    assert pprint((x > 0) & (y < 1)) == "((x > 0) & (y < 1))"
    assert pprint(T.nnet.sigmoid(x) * (1 - T.nnet.sigmoid(x))) == "(sigmoid(x) * (1 - sigmoid(x)))"
    assert pprint(T.dot(x, W)) == "dot(x, W)"
    assert pprint(T.tanh(x).sum(axis=1)) == "Sum{1}(tanh(x))"
    assert pprint(x.T) == "DimShuffle{1,0}(x)"
    assert pprint([x + 1, T.sqrt(y)]) == "(x + 1)\nsqrt(y)"


def test_pprint_of_a_deep_graph_does_not_recurse():
    x = T.fvector("x")
    y = x
    for _ in range(3000):
        y = T.tanh(y)
    assert pprint(y).count("tanh(") == 3000


# -- debugprint of a compiled function ------------------------------------------------------------

def test_debugprint_of_a_compiled_function_lists_its_kernels():
    f = _layer("emu")
    text = debugprint(f, file="str")
    assert "specialization for shapes" in text
    assert f"# {len(f.kernels)} kernels" in text
    for k in f.kernels:
        assert f"{k.name} ({k.family})" in text
    lines = text.splitlines()
    gemm = lines.index(next(line for line in lines if line.startswith(f.kernels[0].name)))
    computes = lines[gemm + 1]
    assert computes.startswith("  computes: Dot [id ") and "tanh{tanh(x0)} [id " in computes, computes
    # the ids are the tree's: the tanh node's label in the kernel listing appears in the tree too
    tanh_id = computes.split("tanh{tanh(x0)} [")[1].split("]")[0]
    assert any(line.lstrip(" |").startswith(f"tanh{{tanh(x0)}} [{tanh_id}]") for line in lines[:gemm])


def test_debugprint_on_reference_has_no_kernel_listing():
    text = debugprint(_layer("reference"), file="str")
    assert "specialization" in text and "kernels" not in text


# -- print(f.program) ----------------------------------------------------------------------------

def test_print_program_is_readable_and_names_what_parameters_carry(capsys):
    f = _layer("emu")
    print(f.program)
    text = capsys.readouterr().out
    assert text.startswith(f"Program: {len(f.kernels)} kernels")
    assert "leaves (inputs, then shared variables):" in text and "0: x float32[2, 3]" in text
    assert "1: W float32[3, 4]" in text and "outputs:" in text and "buffers:" in text
    assert "kernels, in launch order:" in text
    first = f.kernels[0]
    assert f"{first.name} ({first.family}) grid" in text
    assert "p0: carries x float32[2,3], buffer 0 (x)" in text, text
    assert "carries W float32[3,4]" in text and "carries the tanh result float32[2,4]" in text
    assert "computes: Dot, add, tanh" in text
    params = first.params
    assert [p.carries.split()[0] for p in params[:2]] == ["x", "W"]
    assert len(str(f.program)) < 20000   # no kernel source in the printout


# -- pydotprint ----------------------------------------------------------------------------------

def test_pydotprint_dot_text_has_both_graphs_and_kernel_clusters(tmp_path):
    f = _layer("emu")
    out = tmp_path / "graph.dot"
    text = pydotprint(f, outfile=out, format="dot")
    assert out.read_text() == text
    assert text.startswith("digraph theta {") and text.rstrip().endswith("}")
    assert "subgraph cluster_before" in text and 'label="before rewrites"' in text
    assert "subgraph cluster_after0_0" in text and "after rewrites, shapes" in text
    clusters = [line for line in text.splitlines() if "subgraph cluster_after0_0_k" in line]
    assert len(clusters) >= 2     # the GEMM with its bias+tanh epilogue, the sum
    assert "kernel group 0: gemm" in text and ": reduce" in text
    # the nodes the GEMM's epilogue computes are inside its cluster
    body = text.split("subgraph cluster_after0_0_k0 {")[1].split("\n    }")[0]
    assert "Dot" in body and "tanh" in body and "add" in body, body
    lines = [line.strip() for line in text.splitlines()]
    assert "->" in text and sum(line.endswith("{") for line in lines) == lines.count("}")


def test_pydotprint_of_variables_and_of_an_uncalled_function(tmp_path):
    x = T.fvector("x")
    text = pydotprint([T.exp(x) + 1], outfile=tmp_path / "v.dot")
    assert "digraph" in text and "exp" in text and "cluster" not in text
    f = theta.function([x], T.exp(x))
    text = pydotprint(f, outfile=tmp_path / "f.dot")
    assert "cluster_before" in text and "cluster_after" not in text


def test_pydotprint_png_needs_graphviz(tmp_path):
    f = _layer("emu")
    out = tmp_path / "graph.png"
    if shutil.which("dot") is None:
        with pytest.raises(BackendError, match="graphviz's `dot`"):
            pydotprint(f, outfile=out)
        assert "cluster_before" in (tmp_path / "graph.dot").read_text()   # written anyway
        assert not out.exists()
    else:
        pydotprint(f, outfile=out, print_output_file=False)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = tmp_path / "graph.svg"
        pydotprint(f, outfile=svg, format="svg", print_output_file=False)
        assert "<svg" in svg.read_text()
    with pytest.raises(OptionError, match="unknown format"):
        pydotprint(f, outfile=tmp_path / "g.bmp", format="bmp")
